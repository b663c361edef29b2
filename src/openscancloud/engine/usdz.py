"""USDZ export for phones (AR Quick Look on iOS, Scene Viewer via USD-aware apps).

Written with Pixar's own USD library (`usd-core`): one `UsdGeom.Mesh` with face-varying UVs and a
`UsdPreviewSurface` material whose diffuse colour reads the texture PNG, packed by `UsdUtils` into the
uncompressed, 64-byte-aligned zip that AR Quick Look requires. USD scenes are Y-up in metres here, so the
vertices come in already converted to Y-up and are scaled by `meters_per_unit` (1.0: model units are kept).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def write_usdz(path: Path, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture_png: Path,
               meters_per_unit: float = 1.0) -> Path:
    """Write `path` (.usdz) from a Y-up triangle mesh with per-vertex UVs and a PNG texture."""
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="usdz-") as tmp:
        tmp_dir = Path(tmp)
        shutil.copyfile(texture_png, tmp_dir / "texture.png")
        usdc = tmp_dir / "model.usdc"
        stage = Usd.Stage.CreateNew(str(usdc))
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, meters_per_unit)
        root = UsdGeom.Xform.Define(stage, "/Model")
        stage.SetDefaultPrim(root.GetPrim())

        mesh = UsdGeom.Mesh.Define(stage, "/Model/Mesh")
        points = np.asarray(vertices, dtype=np.float32)
        tris = np.asarray(faces, dtype=np.int32)
        mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(points))
        mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(tris), 3, dtype=np.int32)))
        mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(tris.reshape(-1)))
        mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
        mesh.CreateDoubleSidedAttr(True)
        lo, hi = points.min(axis=0), points.max(axis=0)
        mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
        st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray,
                                                    UsdGeom.Tokens.vertex)
        st.Set(Vt.Vec2fArray.FromNumpy(np.asarray(uv, dtype=np.float32)))

        material = UsdShade.Material.Define(stage, "/Model/Material")
        shader = UsdShade.Shader.Define(stage, "/Model/Material/Surface")
        shader.CreateIdAttr("UsdPreviewSurface")
        shader.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(1.0)
        shader.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
        reader = UsdShade.Shader.Define(stage, "/Model/Material/UVReader")
        reader.CreateIdAttr("UsdPrimvarReader_float2")
        reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
        reader.CreateOutput("result", Sdf.ValueTypeNames.Float2)
        image = UsdShade.Shader.Define(stage, "/Model/Material/Texture")
        image.CreateIdAttr("UsdUVTexture")
        image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set("texture.png")
        image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(reader.ConnectableAPI(), "result")
        image.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("clamp")
        image.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("clamp")
        image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
        shader.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(image.ConnectableAPI(), "rgb")
        material.CreateSurfaceOutput().ConnectToSource(shader.ConnectableAPI(), "surface")
        UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
        stage.GetRootLayer().Save()
        del stage
        if path.exists():
            path.unlink()
        if not UsdUtils.CreateNewARKitUsdzPackage(Sdf.AssetPath(str(usdc)), str(path)):
            raise RuntimeError(f"USD could not package {path.name}")
    return path
