// Upload (drop a folder, files or a zip; thumbnails; limits checked; options; resumable) and the project list.
import { ApiError, api, rememberProjectKey, rememberedProjects } from "../api";
import { bytes, clear, h, toast, when } from "../dom";
import { uploadParts } from "../upload";
import { storedZip, type Photo } from "../zip";
import { optionsForm } from "./options";

const PENDING = "osc.pendingUpload";
const PHOTO = /\.(jpe?g|png)$/i;
const MAX_PART = 64 << 20; // bytes per part (never more than the server's part limit)

interface Pending {
  projectId: string;
  name: string;
  signature: string;
  partSize: number;
  photos: number;
}

function signature(photos: Photo[]): string {
  return photos.map((p) => `${p.name}:${p.file.size}:${p.file.lastModified}`).join("|");
}

async function entries(items: DataTransferItemList): Promise<File[]> {
  const files: File[] = [];
  const walk = async (entry: any): Promise<void> => {
    if (!entry) return;
    if (entry.isFile) files.push(await new Promise<File>((ok, fail) => entry.file(ok, fail)));
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch: any[];
      do {
        batch = await new Promise<any[]>((ok, fail) => reader.readEntries(ok, fail));
        for (const child of batch) await walk(child);
      } while (batch.length);
    }
  };
  for (const item of Array.from(items)) await walk(item.webkitGetAsEntry?.());
  return files;
}

export function homeView(): { element: HTMLElement; dispose: () => void } {
  const cancel = { cancelled: false };
  let photos: Photo[] = [];
  let zipFile: File | null = null;
  let limits: any = null;
  const thumbs: string[] = [];

  const summary = h("p", { class: "summary", "aria-live": "polite" }, "No photos chosen yet.");
  const grid = h("ul", { class: "thumbs", "aria-label": "Chosen photos" });
  const progress = h("progress", { max: "100", value: "0", hidden: true, "aria-label": "Upload progress" }) as HTMLProgressElement;
  const progressText = h("p", { class: "progress-text", "aria-live": "polite" });
  const nameInput = h("input", { id: "project-name", name: "name", pattern: "[A-Za-z0-9._-]{1,128}", placeholder: "optional, e.g. vase-2024" }) as HTMLInputElement;
  const options = optionsForm();
  const startButton = h("button", { type: "submit", disabled: true }, "Upload and start") as HTMLButtonElement;
  const pending: Pending | null = JSON.parse(localStorage.getItem(PENDING) || "null");
  const resumeNote = pending
    ? h("div", { class: "note", role: "note" }, `An upload of ${pending.photos} photos (${pending.name}) was interrupted. Choose the same photos again and it continues where it stopped.`,
        h("button", { type: "button", class: "link", onclick: () => { localStorage.removeItem(PENDING); resumeNote?.remove(); } }, "Forget it"))
    : null;

  const fileInput = h("input", { type: "file", multiple: true, accept: "image/jpeg,image/png,.zip", class: "visually-hidden", id: "files" }) as HTMLInputElement;
  const folderInput = h("input", { type: "file", class: "visually-hidden", id: "folder" }) as HTMLInputElement;
  folderInput.setAttribute("webkitdirectory", "");

  const take = (files: File[]) => {
    thumbs.forEach(URL.revokeObjectURL);
    thumbs.length = 0;
    const zips = files.filter((f) => /\.zip$/i.test(f.name));
    zipFile = zips.length === 1 && files.length === 1 ? zips[0] : null;
    const images = files.filter((f) => PHOTO.test(f.name));
    const seen = new Map<string, number>();
    photos = images
      .map((file) => ({ file, name: ((file as any).webkitRelativePath || file.name).split("/").slice(-1)[0] }))
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => {
        const n = seen.get(p.name) ?? 0;
        seen.set(p.name, n + 1);
        return n ? { ...p, name: p.name.replace(/(\.[^.]+)$/, `-${n}$1`) } : p;
      });
    const skipped = files.length - images.length - (zipFile ? 1 : 0);
    clear(grid);
    for (const p of photos.slice(0, 48)) {
      const url = URL.createObjectURL(p.file);
      thumbs.push(url);
      grid.append(h("li", {}, h("img", { src: url, alt: p.name, loading: "lazy", width: 72, height: 72 })));
    }
    if (photos.length > 48) grid.append(h("li", { class: "more" }, `+${photos.length - 48}`));
    check(skipped);
  };

  const check = (skipped = 0) => {
    const size = zipFile ? zipFile.size : photos.reduce((s, p) => s + p.file.size, 0);
    const count = zipFile ? null : photos.length;
    const problems: string[] = [];
    if (!zipFile && photos.length === 0) problems.push("No photos chosen yet: choose JPEG or PNG photos, a folder of them, or one zip.");
    if (limits && count !== null && count > limits.limit_photos) problems.push(`${count} photos are more than your token allows (${limits.limit_photos}).`);
    if (limits && size > limits.limit_filesize) problems.push(`${bytes(size)} is more than your token allows (${bytes(limits.limit_filesize)}).`);
    if (limits && size / 1e9 > limits.credit + 1e-9) problems.push(`This upload needs ${(size / 1e9).toFixed(3)} GB of credit; your token has ${limits.credit.toFixed(3)} GB left.`);
    const what = zipFile ? `1 zip (${zipFile.name}), ${bytes(size)}` : photos.length ? `${count} photos, ${bytes(size)}` : "";
    summary.textContent = [what, skipped ? `${skipped} other file(s) skipped.` : "", ...problems].filter(Boolean).join(" ");
    summary.classList.toggle("error", problems.length > 0 && (zipFile !== null || photos.length > 0));
    startButton.disabled = problems.length > 0;
  };

  api.get("/api/v1/token").then((t) => { limits = t; check(); }, () => undefined);

  const drop = h("div", { class: "drop", tabindex: "0", role: "button", "aria-describedby": "drop-help" },
    h("strong", {}, "Drop photos, a folder or a zip here"),
    h("span", { id: "drop-help" }, " — or "),
    h("label", { for: "files", class: "button secondary" }, "choose files"),
    " ",
    h("label", { for: "folder", class: "button secondary" }, "choose a folder"),
    fileInput, folderInput);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer) take(await entries(e.dataTransfer.items));
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } });
  fileInput.addEventListener("change", () => take(Array.from(fileInput.files || [])));
  folderInput.addEventListener("change", () => take(Array.from(folderInput.files || [])));

  const start = async (e: Event) => {
    e.preventDefault();
    const chosen = options.read();
    if (typeof chosen === "string") return toast(chosen, "error");
    startButton.disabled = true;
    progress.hidden = false;
    try {
      progressText.textContent = "Preparing the zip…";
      const zip: Blob = zipFile ?? (await storedZip(photos, (d, t) => (progressText.textContent = `Preparing the zip… ${Math.round((100 * d) / t)}%`)));
      const sig = zipFile ? `zip:${zipFile.name}:${zipFile.size}:${zipFile.lastModified}` : signature(photos);
      const partSize = Math.min(limits?.part_limit || MAX_PART, MAX_PART);
      let project: any;
      if (pending && pending.signature === sig) {
        project = await api.get(`/api/v1/projects/${pending.projectId}`);
      } else {
        const body: any = { photos: zipFile ? 1 : photos.length, filesize: zip.size, parts: Math.max(1, Math.ceil(zip.size / partSize)), ...chosen };
        if (nameInput.value.trim()) body.name = nameInput.value.trim();
        project = await api.post("/api/v1/projects", body);
        rememberProjectKey(project.id, project.project_key);
        localStorage.setItem(PENDING, JSON.stringify({ projectId: project.id, name: project.name, signature: sig, partSize, photos: photos.length } satisfies Pending));
      }
      const size = (pending && pending.signature === sig) ? pending.partSize : partSize;
      await uploadParts(project.id, zip, project.ulink, size, (s) => {
        progress.value = (100 * s.sent) / s.total;
        progressText.textContent = `Uploading ${project.name}: ${bytes(s.sent)} of ${bytes(s.total)}`;
      }, cancel);
      progressText.textContent = "Checking the photos and starting…";
      await api.post(`/api/v1/projects/${project.id}/start`);
      localStorage.removeItem(PENDING);
      location.hash = `#/p/${project.id}`;
    } catch (err) {
      if (cancel.cancelled) return;
      toast((err as Error).message, "error");
      progressText.textContent = (err as Error).message;
      startButton.disabled = false;
    }
  };

  const list = h("div", { class: "projects" }, h("p", {}, "Loading your projects…"));
  const loadList = () => api.get("/api/v1/projects").then(async (r) => {
    const rows = r.projects as any[];
    // public-token projects are listed to nobody: add the ones this browser created (it holds their keys)
    const listed = new Set(rows.map((p) => p.id));
    for (const id of rememberedProjects().filter((i) => !listed.has(i))) {
      try {
        rows.push(await api.get(`/api/v1/projects/${id}`));
      } catch {
        /* deleted or expired */
      }
    }
    rows.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
    if (!rows.length) return clear(list, h("p", {}, "No projects yet."));
    clear(list, h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Project"), h("th", {}, "Status"), h("th", {}, "Progress"), h("th", {}, "Photos"), h("th", {}, "Created"))),
      h("tbody", {}, ...rows.map((p) => h("tr", {},
        h("td", {}, h("a", { href: `#/p/${p.id}` }, p.name)),
        h("td", {}, h("span", { class: `badge ${p.status}` }, p.status)),
        h("td", {}, `${Math.round(p.progress)}%`),
        h("td", {}, p.photos),
        h("td", {}, when(p.created_at))))))));
  }, (e: ApiError) => clear(list, h("p", { class: "error" }, e.message)));
  loadList();
  const timer = setInterval(loadList, 10000);

  const element = h("div", { class: "home" },
    h("section", { class: "card" },
      h("h1", {}, "Scan something"),
      h("p", { class: "lead" }, "Take 30–200 overlapping photos around an object, drop them here, and get a textured 3D model back."),
      resumeNote,
      h("form", { onsubmit: start },
        drop, summary, grid,
        h("div", { class: "field" }, h("label", { for: "project-name" }, "Project name"), nameInput),
        options.element,
        h("div", { class: "actions" }, startButton),
        progress, progressText)),
    h("section", { class: "card" }, h("h2", {}, "Your projects"), list));
  return { element, dispose: () => { cancel.cancelled = true; clearInterval(timer); thumbs.forEach(URL.revokeObjectURL); } };
}
