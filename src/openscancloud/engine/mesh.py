"""Stage 5 — mesh: a watertight Poisson surface, cut back to where the photos actually saw something.

Why: screened Poisson turns the oriented dense points (with the normals PatchMatch estimated) into a smooth closed
surface but also invents a "balloon" where nothing was observed.  Instead of a density quantile, every vertex
farther than a few point spacings from the dense cloud is removed (the surface must be supported by data), the
turntable plate is cut away on turntable sets (from the points, and from the surface at the same plane, where
Poisson would otherwise close the open bottom with a skirt along the plate), floating pieces of the cloud are
dropped by connectivity (not by a height or distance rule, so thin parts and undersides that the depth maps found
stay), small holes are closed,
and quadric decimation brings the mesh to the preset's triangle budget (texturing time grows with the face count).
Last, with the photos at hand, every vertex slides along its normal to where the photos agree best (refine.py).
The result reports which fraction of its area lies within two point spacings of the dense cloud.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .context import StageContext, StageResult, load_done, save_done
from .dense import DenseResult
from .errors import EngineError
from .masks import MaskResult
from . import silhouettes
from . import refine as refine_surface
from .orient import Orientation
from .region import floating_points, remove_plate, standing_object
from .region import underside as region_underside
from .sparse import SparseResult, camera_arrays, point_positions

log = logging.getLogger(__name__)

SUPPORT_SPACINGS = 8.0  # a vertex must lie within this many point spacings of a dense point
SUPPORTED_SPACINGS = 2.0  # area this close to the dense cloud counts as "supported by data" in the report
MIN_COMPONENT_RATIO = 0.05  # components smaller than this fraction of the largest are floaters
# changes here redo the mesh on a resumed job
MESH_VERSION = "plate-cut-surface-underside-refined-robust-sparse-plate-hull-9"


@dataclass
class MeshResult(StageResult):
    mesh_path: Path  # PLY, in the sparse model's frame
    num_vertices: int
    num_faces: int
    plate_removed: bool
    point_spacing: float
    supported_fraction: float = 1.0  # share of the surface area within SUPPORTED_SPACINGS of the dense cloud
    refinement: dict | None = None  # what the refinement against the photos did (None: no photos given)
    kept_inside_masks: int | None = None  # vertices moved back inside the silhouettes (None: no silhouettes)
    hull_points: int | None = None  # points of the masks' hull added over holes of the cloud (None: no user masks)


def supported_fraction(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, spacing: float,
                       workers: int = 1) -> float:
    """Share of the mesh area whose vertices lie within SUPPORTED_SPACINGS point spacings of the dense cloud."""
    from scipy.spatial import cKDTree

    if len(faces) == 0:
        return 0.0
    d, _ = cKDTree(points).query(vertices, k=1, workers=workers)
    near = (d <= SUPPORTED_SPACINGS * spacing).astype(np.float64)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return float(np.sum(area * near[faces].mean(axis=1)) / max(np.sum(area), 1e-30))


def run(dense: DenseResult, orientation: Orientation, ctx: StageContext, sparse: SparseResult | None = None,
        images_dir: Path | None = None, masks: MaskResult | None = None) -> MeshResult:
    """The surface of the dense cloud; with the cameras (`sparse`) and the photos they were computed on
    (`images_dir`, by image name) it is refined against the photos at the end, and with silhouettes in `masks` (the
    user's masks, or a static rig's tight silhouettes) kept inside them (silhouettes.py)."""
    import open3d as o3d
    import pymeshlab
    from scipy.spatial import cKDTree

    preset = ctx.preset
    key = {"dense": dense.to_dict(), "depth": preset.poisson_depth, "faces": preset.target_faces,
           "orientation": orientation.to_dict(), "version": MESH_VERSION,
           "refined": sparse is not None and images_dir is not None,
           "silhouettes": _silhouettes_of(masks) if sparse is not None else None,
           "hull": masks is not None and masks.mode == "user"}
    if (saved := load_done(ctx.work_dir, key)) is not None:
        return MeshResult.from_dict(saved)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    pcd = o3d.io.read_point_cloud(str(dense.ply_path))
    points = np.asarray(pcd.points)
    if len(points) < 100:
        raise EngineError("The dense cloud is too small to build a surface.")
    tree = cKDTree(points)
    dist, _ = tree.query(points[:: max(1, len(points) // 20000)], k=2)
    spacing = float(np.median(dist[:, 1]))
    normals = np.asarray(pcd.normals) if pcd.has_normals() else None
    rec = sparse.load() if sparse is not None else None  # read once: the plate check, hull, refinement and bound
    cams = camera_arrays(rec) if rec is not None else {}
    sparse_plates = None
    if rec is not None and (standing := standing_object(point_positions(rec), orientation)) is not None:
        sparse_plates = standing[1]
    keep, plates = remove_plate(points, orientation, spacing, normals, sparse_plates)
    keep[keep] = ~floating_points(points[keep], spacing)
    pcd = pcd.select_by_index(np.nonzero(keep)[0])
    points = np.asarray(pcd.points)
    normals = normals[keep] if normals is not None else None
    observed = points  # what the depth maps found (the report's supported share is measured against it)
    hull_points = 0
    if key["silhouettes"] and key["hull"] and normals is not None:
        # only the user's masks: a static rig's automatic silhouettes keep the turning plate and what the object
        # covers in most photos, and their hull bridged a plain bust's waist (F@0.5 % 0.579 → 0.502, session 18)
        ctx.report(0.05, "filling holes with the hull of your masks")
        pcd, hull_points = _with_hull_in_holes(pcd, points, spacing, plates, cams, masks, ctx)
        points, normals = np.asarray(pcd.points), np.asarray(pcd.normals)
    ctx.report(0.1, f"Poisson surface from {len(points)} points")
    ctx.check_cancelled()
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        pcd, depth=preset.poisson_depth, scale=1.1, linear_fit=False, n_threads=max(1, ctx.num_threads))
    ctx.report(0.55, "trimming unsupported surface")
    ctx.check_cancelled()
    verts = np.asarray(mesh.vertices)
    tree = cKDTree(points)
    d, _ = tree.query(verts, k=1, workers=max(1, ctx.num_threads))
    unsupported = d > SUPPORT_SPACINGS * spacing
    for plate in plates:  # Poisson closes the open bottom with a skirt along the plate: cut where the points were,
        # except where the object's underside (seen by a flipped session) was kept there
        underside = points[region_underside(plate, points, normals, spacing)[0]] if normals is not None else points[:0]
        low = np.nonzero(~plate.above(verts))[0]
        if len(underside):
            near, _ = cKDTree(underside).query(verts[low], k=1, workers=max(1, ctx.num_threads))
            low = low[near > SUPPORTED_SPACINGS * spacing]
        unsupported[low] = True
    mesh.remove_vertices_by_mask(unsupported)
    # drop floaters
    clusters, counts, _ = mesh.cluster_connected_triangles()
    clusters = np.asarray(clusters)
    counts = np.asarray(counts)
    if len(counts) == 0:
        raise EngineError("The surface reconstruction produced no triangles.")
    small = counts[clusters] < MIN_COMPONENT_RATIO * counts.max()
    mesh.remove_triangles_by_mask(small)
    mesh.remove_unreferenced_vertices()
    ctx.report(0.7, "cleaning and decimating")
    ctx.check_cancelled()
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=np.asarray(mesh.vertices), face_matrix=np.asarray(mesh.triangles)))
    ms.meshing_remove_duplicate_vertices()
    ms.meshing_remove_duplicate_faces()
    ms.meshing_remove_null_faces()
    ms.meshing_repair_non_manifold_edges()
    ms.meshing_remove_unreferenced_vertices()
    try:
        ms.meshing_close_holes(maxholesize=30, newfaceselected=False)  # a selection would stop decimation
    except Exception as exc:  # hole filling is cosmetic; a failure must not lose the mesh
        log.warning("hole filling skipped: %s", exc)
    if ms.current_mesh().face_number() > preset.target_faces:
        ms.meshing_decimation_quadric_edge_collapse(targetfacenum=preset.target_faces, preservenormal=True,
                                                    planarquadric=True, qualitythr=0.4)
    ms.meshing_remove_unreferenced_vertices()
    ms.meshing_repair_non_manifold_edges()
    m = ms.current_mesh()
    if m.face_number() == 0:
        raise EngineError("The surface reconstruction produced no triangles.")
    vertices, faces = np.asarray(m.vertex_matrix()), np.asarray(m.face_matrix())
    refinement = None
    if key["refined"]:
        ctx.report(0.8, "refining the surface against the photos")
        vertices, stats = refine_surface.refine(vertices, faces, cams,
                                                lambda name: images_dir / name,
                                                lambda f: ctx.report(0.8 + 0.18 * f, "refining the surface against "
                                                                     "the photos"), ctx.check_cancelled)
        refinement = stats.to_dict()
    kept_inside = None
    if key["silhouettes"]:
        ctx.report(0.98, "keeping the surface inside the silhouettes")
        vertices, kept_inside = silhouettes.keep_inside(vertices, _vertex_normals(vertices, faces),
                                                        cams, masks.silhouette_path,
                                                        ctx.check_cancelled)
    out = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    out.compute_vertex_normals()
    path = ctx.work_dir / "mesh.ply"
    o3d.io.write_triangle_mesh(str(path), out)
    supported = supported_fraction(vertices, faces, observed, spacing, max(1, ctx.num_threads))
    result = MeshResult(path, len(out.vertices), len(out.triangles), bool(plates), spacing, round(supported, 4),
                        refinement, kept_inside, hull_points if key["silhouettes"] and key["hull"] else None)
    save_done(ctx.work_dir, key, result.to_dict())
    ctx.report(1.0, f"{len(out.triangles)} triangles")
    return result


def _with_hull_in_holes(pcd, points: np.ndarray, spacing: float, plates: list, cams: dict[str, dict],
                        masks: MaskResult, ctx: StageContext):
    """The cloud with the silhouettes' hull over its holes (silhouettes.hull_in_holes), above every plate; and
    how many points that added."""
    import open3d as o3d

    hull, hull_normals = silhouettes.hull_in_holes(points, spacing, cams, masks.silhouette_path,
                                                 ctx.check_cancelled)
    for plate in plates:  # the masks hold no plate, so the hull runs on below the object's foot
        above = plate.above(hull)
        hull, hull_normals = hull[above], hull_normals[above]
    if not len(hull):
        return pcd, 0
    added = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(hull))
    added.normals = o3d.utility.Vector3dVector(hull_normals)
    if pcd.has_colors():
        added.colors = o3d.utility.Vector3dVector(np.full((len(hull), 3), 0.5))
    return pcd + added, len(hull)


def _silhouettes_of(masks: MaskResult | None) -> str | None:
    """Where the silhouettes that may bound the surface are (the user's masks, or a static rig's tight
    silhouettes, masks.py), not the generous automatic masks; None without any."""
    return str(masks.silhouettes_dir) if masks is not None and masks.silhouettes_dir is not None else None


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    mesh.compute_vertex_normals()
    return np.asarray(mesh.vertex_normals)


