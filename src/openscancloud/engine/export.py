"""Stage 7 — export: every output in one frame (the orientation transform applied to all of them).

Files: `model.obj` + `model.mtl` + the texture PNG it names (`material_0.png`), `model.glb`, `model.stl`
(untextured mesh for slicers/3D printing), `model.usdz` (AR on phones), `dense.ply`, `sparse/` (COLMAP binary
model), `preview.png`.  OBJ, PLY and the sparse model use the engine's frame (+Z up, object centred); `model.glb`
and `model.usdz` follow the glTF/USD convention (+Y up), i.e. (x, y, z) → (x, z, −y), so web viewers and phones
show them upright; STL keeps +Z up, which slicers expect.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .context import StageContext
from .dense import DenseResult
from .orient import Orientation
from .render import render_textured
from .sparse import SparseResult
from .texture import TextureResult

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


@dataclass
class ExportResult:
    outputs: dict[str, str]  # kind → path


def _similarity(T: np.ndarray):
    import pycolmap

    R = T[:3, :3]
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(R).as_quat()  # x, y, z, w — pycolmap's Rotation3d order
    return pycolmap.Sim3d(1.0, pycolmap.Rotation3d(q), T[:3, 3])


def run(texture: TextureResult, dense: DenseResult, sparse: SparseResult, orientation: Orientation,
        out_dir: Path, ctx: StageContext, formats: tuple[str, ...] = ("glb", "obj", "ply", "stl", "usdz")) -> ExportResult:
    """Write the requested formats (glb, obj, ply = the dense cloud, stl, usdz) plus the sparse model and a
    preview."""
    import open3d as o3d
    import trimesh
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    T = orientation.transform
    V, F, UV = texture.load()
    Vo = orientation.apply(V)
    tex_bgr = cv2.imread(str(texture.texture_path), cv2.IMREAD_COLOR)
    tex_img = Image.fromarray(cv2.cvtColor(tex_bgr, cv2.COLOR_BGR2RGB))
    ctx.report(0.05, "writing " + ", ".join(formats).upper())
    outputs: dict[str, str] = {}
    if "obj" in formats:
        material = trimesh.visual.material.SimpleMaterial(image=tex_img, diffuse=[255, 255, 255, 255],
                                                          ambient=[255, 255, 255, 255], specular=[0, 0, 0, 255])
        mesh = trimesh.Trimesh(vertices=Vo, faces=F, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=UV, image=tex_img, material=material))
        obj_text, files = trimesh.exchange.obj.export_obj(mesh, include_texture=True, include_normals=True,
                                                          mtl_name="model.mtl", return_texture=True)
        for name, data in files.items():
            target = out_dir / name
            target.write_bytes(data)
            if name.lower().endswith((".png", ".jpg", ".jpeg")):
                outputs["texture"] = str(target)
        (out_dir / "model.obj").write_text(obj_text)
        outputs["obj"] = str(out_dir / "model.obj")
        outputs["mtl"] = str(out_dir / "model.mtl")
    if "glb" in formats:
        ctx.report(0.3, "writing GLB")
        pbr = trimesh.visual.material.PBRMaterial(baseColorTexture=tex_img, metallicFactor=0.0,
                                                  roughnessFactor=1.0)
        glb_mesh = trimesh.Trimesh(vertices=Vo @ Z_UP_TO_Y_UP.T, faces=F, process=False,
                                   visual=trimesh.visual.TextureVisuals(uv=UV, material=pbr))
        (out_dir / "model.glb").write_bytes(glb_mesh.export(file_type="glb"))
        outputs["glb"] = str(out_dir / "model.glb")
    if "stl" in formats:
        ctx.report(0.35, "writing STL")
        trimesh.Trimesh(vertices=Vo, faces=F, process=False).export(str(out_dir / "model.stl"), file_type="stl")
        outputs["stl"] = str(out_dir / "model.stl")
    if "usdz" in formats:
        ctx.report(0.4, "writing USDZ")
        from .usdz import write_usdz

        png = out_dir / ".usdz-texture.png"
        tex_img.save(png)
        try:
            write_usdz(out_dir / "model.usdz", Vo @ Z_UP_TO_Y_UP.T, F, UV, png)
        finally:
            png.unlink(missing_ok=True)
        outputs["usdz"] = str(out_dir / "model.usdz")
    if "ply" in formats:
        ctx.report(0.5, "writing dense cloud")
        pcd = o3d.io.read_point_cloud(str(dense.ply_path))
        pcd.transform(T)
        o3d.io.write_point_cloud(str(out_dir / "dense.ply"), pcd, write_ascii=False)
        outputs["dense"] = str(out_dir / "dense.ply")
    ctx.report(0.6, "writing sparse model")
    rec = sparse.load()
    rec.transform(_similarity(T))
    sparse_dir = out_dir / "sparse"
    if sparse_dir.exists():
        shutil.rmtree(sparse_dir)
    sparse_dir.mkdir()
    rec.write(str(sparse_dir))
    outputs["sparse"] = str(sparse_dir)
    ctx.report(0.7, "rendering preview")
    view_dir, up = preview_direction(rec, Vo)
    preview = render_textured(Vo, F, UV, tex_bgr, view_dir, up)
    cv2.imwrite(str(out_dir / "preview.png"), preview)
    outputs["preview"] = str(out_dir / "preview.png")
    ctx.report(1.0, "outputs written")
    return ExportResult(outputs)


def preview_direction(rec, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Look at the model like the photographer did: from the side most photos came from (or, when the photos
    surround the object, from the first photo's side), 20° above the horizon, +Z up."""
    centers = np.array([img.projection_center() for img in rec.images.values() if img.has_pose])
    center = (vertices.min(0) + vertices.max(0)) / 2
    rel = centers - center
    unit = rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-12)
    mean = unit.mean(0)
    side = mean if np.linalg.norm(mean) > 0.5 else unit[0]
    horiz = np.array([side[0], side[1], 0.0])
    if np.linalg.norm(horiz) < 1e-6:
        horiz = np.array([0.0, -1.0, 0.0])
    horiz /= np.linalg.norm(horiz)
    elev = np.radians(20.0)
    eye_dir = horiz * np.cos(elev) + np.array([0, 0, 1.0]) * np.sin(elev)
    return -eye_dir, np.array([0, 0, 1.0])
