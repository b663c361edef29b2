// The processing options form (used before an upload and for "process again"), mirroring the server's checks.
import { h } from "../dom";

export interface Options {
  quality: string | null; // null: the server's default
  masks: string;
  texture_size: number | null;
  target_faces: number | null;
  formats: string[];
}

const FORMATS: [string, string][] = [
  ["glb", "GLB (web, viewer)"],
  ["obj", "OBJ + texture"],
  ["ply", "PLY point cloud"],
  ["stl", "STL (3D printing)"],
  ["usdz", "USDZ (iPhone/iPad AR)"],
];

export function optionsForm(initial?: Partial<Options>): { element: HTMLElement; read: () => Options | string } {
  const id = (s: string) => `opt-${s}-${Math.random().toString(36).slice(2, 7)}`;
  const select = (label: string, name: string, choices: [string, string][], value: string) => {
    const sid = id(name);
    const el = h("select", { id: sid, name }, ...choices.map(([v, t]) => h("option", { value: v, selected: v === value }, t))) as HTMLSelectElement;
    return { el, row: h("div", { class: "field" }, h("label", { for: sid }, label), el) };
  };
  const quality = select("Quality", "quality", [["", "The server's default"], ["preview", "Preview — fastest"], ["standard", "Standard"], ["high", "High — slowest"]], initial?.quality ?? "");
  const masks = select("Background masks", "masks", [["auto", "Automatic (turntable/rig background)"], ["off", "Off — use every pixel"], ["user", "My own (NAME_mask.png beside each photo)"]], initial?.masks ?? "auto");
  const texture = select("Texture size", "texture_size", [["", "Automatic (from quality)"], ["1024", "1024 px"], ["2048", "2048 px"], ["4096", "4096 px"], ["8192", "8192 px"]], initial?.texture_size ? String(initial.texture_size) : "");
  const facesId = id("faces");
  const faces = h("input", { id: facesId, name: "target_faces", type: "number", min: "1000", max: "5000000", step: "1000", placeholder: "automatic", value: initial?.target_faces ?? "" }) as HTMLInputElement;
  const chosen = new Set(initial?.formats ?? FORMATS.map(([f]) => f));
  const boxes = FORMATS.map(([f, label]) => {
    const box = h("input", { type: "checkbox", name: "formats", value: f, checked: chosen.has(f) }) as HTMLInputElement;
    return { f, box, row: h("label", { class: "check" }, box, ` ${label}`) };
  });
  const element = h(
    "fieldset",
    { class: "options" },
    h("legend", {}, "Options"),
    quality.row, masks.row, texture.row,
    h("div", { class: "field" }, h("label", { for: facesId }, "Triangles"), faces),
    h("div", { class: "field formats", role: "group", "aria-label": "Output formats" }, h("span", { class: "label" }, "Formats"),
      h("div", { class: "checks" }, ...boxes.map((b) => b.row))),
  );
  const read = (): Options | string => {
    const formats = boxes.filter((b) => b.box.checked).map((b) => b.f);
    if (!formats.length) return "Choose at least one output format.";
    const n = faces.value.trim() ? Number(faces.value) : null;
    if (n !== null && (!Number.isInteger(n) || n < 1000 || n > 5_000_000)) return "Triangles must be a whole number between 1,000 and 5,000,000 (or empty for automatic).";
    return { quality: quality.el.value || null, masks: masks.el.value, texture_size: texture.el.value ? Number(texture.el.value) : null, target_faces: n, formats };
  };
  return { element, read };
}
