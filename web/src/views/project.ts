// One project: live status (stage, progress, time left and what it is based on, log tail), cancel / delete /
// process again, and once done the 3D viewer, per-format downloads and share links. Also the shared view.
import { ApiError, api, follow } from "../api";
import { bytes, clear, duration, h, toast, when } from "../dom";
import { createViewer } from "../viewer";
import { optionsForm } from "./options";

const LABELS: Record<string, string> = {
  glb: "GLB — web and most 3D apps",
  obj: "OBJ + MTL + texture (zip)",
  stl: "STL — 3D printing (no colour)",
  usdz: "USDZ — AR on iPhone/iPad",
  ply: "PLY — dense point cloud",
  preview: "Preview image",
  report: "Report (JSON)",
};
const ACTIVE = ["queued", "processing"];
const STAGES: Record<string, string> = {
  queued: "Waiting in the queue", starting: "Starting", download: "Fetching the photos", ingest: "Reading photos",
  masks: "Masking the background", sparse: "Recovering camera positions", dense: "Computing depth maps",
  mesh: "Building the surface", texture: "Baking the texture", export: "Writing the model files",
  upload: "Storing the result",
};

function downloadsList(files: any[]): HTMLElement {
  return h("ul", { class: "downloads" }, ...files.map((f) =>
    h("li", {}, h("a", { href: f.url, download: f.name }, LABELS[f.kind] || f.name), h("span", { class: "muted" }, ` ${f.name}, ${bytes(f.size)}`))));
}

function viewerFor(files: any[], name: string, signedInline: (url: string) => string) {
  const glb = files.find((f) => f.kind === "glb");
  const previewFile = files.find((f) => f.kind === "preview");
  if (!glb) return null;
  return createViewer({ glbUrl: signedInline(glb.url), previewUrl: previewFile ? signedInline(previewFile.url) : undefined, name });
}

const inline = (url: string) => `${url}${url.includes("?") ? "&" : "?"}inline=true`;

export function projectView(id: string): { element: HTMLElement; dispose: () => void } {
  const disposers: (() => void)[] = [];
  const title = h("h1", {}, "Project");
  const badge = h("span", { class: "badge" });
  const stage = h("p", { class: "stage", "aria-live": "polite" });
  const bar = h("progress", { max: "100", value: "0", "aria-label": "Processing progress" }) as HTMLProgressElement;
  const eta = h("p", { class: "eta" });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const log = h("pre", { class: "log", tabindex: "0", "aria-label": "Log tail" });
  const actions = h("div", { class: "actions" });
  const logBox = h("details", { class: "log-box" }, h("summary", {}, "Log"), log) as HTMLDetailsElement;
  const result = h("div", { class: "result" });
  let lastStatus = "";
  let viewerShown = false;

  const act = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      toast(what);
    } catch (e) {
      toast((e as Error).message, "error");
    }
  };

  const showResult = async (p: any) => {
    if (viewerShown) return;
    viewerShown = true;
    try {
      const files = await api.get(`/api/v1/projects/${id}/files`);
      const viewer = viewerFor(files.downloads, p.name, inline);
      if (viewer) disposers.push(viewer.dispose);
      const shares = h("div", { class: "shares" });
      const loadShares = async () => {
        const r = await api.get(`/api/v1/projects/${id}/shares`);
        const live = (r.shares as any[]).filter((s) => !s.revoked);
        clear(shares, live.length ? h("ul", {}, ...live.map((s) => {
          const field = h("input", { value: s.url, readonly: true, "aria-label": "Share link", class: "share-url" }) as HTMLInputElement;
          return h("li", {}, field,
            h("button", { type: "button", class: "secondary", onclick: () => { field.select(); navigator.clipboard?.writeText(s.url).then(() => toast("Link copied.")); } }, "Copy"),
            h("button", { type: "button", class: "danger", onclick: () => act("The link no longer works.", async () => { await api.post(`/api/v1/projects/${id}/shares/${s.id}/revoke`); loadShares(); }) }, "Revoke"));
        })) : h("p", { class: "muted" }, "No share link yet."));
      };
      loadShares();
      clear(result,
        viewer?.element,
        h("section", { class: "card" }, h("h2", {}, "Downloads"), downloadsList(files.downloads),
          files.dlink ? h("p", {}, h("a", { href: files.dlink }, "Everything as one zip"), h("span", { class: "muted" }, ` ${bytes(files.size)}`)) : null),
        h("section", { class: "card" }, h("h2", {}, "Share"),
          h("p", {}, "A share link opens this viewer and the downloads for anyone who has it — read-only, no token. Revoke it any time."),
          shares,
          h("button", { type: "button", onclick: () => act("Share link created.", async () => { await api.post(`/api/v1/projects/${id}/shares`); loadShares(); }) }, "Create a share link")));
    } catch (e) {
      viewerShown = false;
      clear(result, h("p", { class: "error" }, (e as Error).message));
    }
  };

  const render = (p: any) => {
    title.textContent = p.name;
    badge.textContent = p.status;
    badge.className = `badge ${p.status}`;
    bar.value = p.progress ?? 0;
    bar.hidden = !ACTIVE.includes(p.status) && p.status !== "done";
    stage.textContent = ACTIVE.includes(p.status) ? `${STAGES[p.stage] ?? p.stage ?? p.status} — ${Math.round(p.progress)}%` : p.status === "done" ? `Finished ${when(p.finished_at)}` : "";
    eta.textContent = !ACTIVE.includes(p.status) ? "" : p.eta_seconds != null
      ? `Time left: ${duration(p.eta_seconds)} (${p.eta_basis})`
      : `Time left: unknown${p.eta_basis ? ` — ${p.eta_basis.replace(/^unknown: /, "")}` : ""}`;
    error.hidden = !p.error;
    error.textContent = p.error || "";
    log.textContent = p.log_tail || "The log starts when a worker picks up the project.";
    log.scrollTop = log.scrollHeight;
    if (p.status !== lastStatus) {
      lastStatus = p.status;
      logBox.open = ACTIVE.includes(p.status) || p.status === "failed";
      const buttons: HTMLElement[] = [];
      if (["created", "uploading", ...ACTIVE].includes(p.status))
        buttons.push(h("button", { type: "button", class: "secondary", onclick: () => act("Cancelled; unused credit was returned.", async () => render(await api.post(`/api/v1/projects/${id}/cancel`))) }, "Cancel"));
      if (["done", "failed", "cancelled"].includes(p.status)) {
        const form = optionsForm(p.options);
        buttons.push(h("details", { class: "reprocess" }, h("summary", {}, "Process again with other options"),
          h("p", { class: "muted" }, "Uses the photos already on the server — nothing is uploaded again. It costs the upload's credit again and replaces the current result."),
          form.element,
          h("button", { type: "button", onclick: () => {
            const o = form.read();
            if (typeof o === "string") return toast(o, "error");
            act("Queued again.", async () => { render(await api.post(`/api/v1/projects/${id}/reprocess`, o)); viewerShown = false; clear(result); startFollowing(); });
          } }, "Process again")));
      }
      buttons.push(h("button", { type: "button", class: "danger", onclick: () => {
        if (!confirm(`Delete ${p.name} with its photos and model from the server?`)) return;
        act("Deleted.", async () => { await api.del(`/api/v1/projects/${id}`); location.hash = "#/"; });
      } }, "Delete"));
      clear(actions, ...buttons);
    }
    if (p.status === "done") showResult(p);
  };

  let stop: (() => void) | null = null;
  const startFollowing = () => {
    stop?.();
    stop = follow(id, render, (e) => {
      if ((e as ApiError).status === 404 || (e as ApiError).status === 403) clear(result, h("p", { class: "error" }, e.message));
    });
  };
  startFollowing();
  disposers.push(() => stop?.());

  const element = h("div", { class: "project" },
    h("p", {}, h("a", { href: "#/" }, "← All projects")),
    h("section", { class: "card" }, h("div", { class: "title-row" }, title, badge), stage, bar, eta, error, actions,
      logBox),
    result);
  return { element, dispose: () => disposers.forEach((d) => d()) };
}

export function sharedView(shareId: string, signature: string): { element: HTMLElement; dispose: () => void } {
  const disposers: (() => void)[] = [];
  const element = h("div", { class: "project shared" }, h("p", {}, "Loading the shared model…"));
  api.get(`/api/v1/shared/${shareId}?s=${signature}`).then((s) => {
    const viewer = viewerFor(s.files, s.name, inline);
    if (viewer) disposers.push(viewer.dispose);
    clear(element,
      h("section", { class: "card" }, h("h1", {}, s.name), h("p", { class: "muted" }, `Shared 3D scan — ${s.photos} photos${s.mesh ? `, ${Number(s.mesh.faces).toLocaleString()} triangles` : ""}.`)),
      viewer?.element,
      h("section", { class: "card" }, h("h2", {}, "Downloads"), downloadsList(s.files)));
  }, (e: Error) => clear(element, h("section", { class: "card" }, h("h1", {}, "Shared model"), h("p", { class: "error" }, e.message))));
  return { element, dispose: () => disposers.forEach((d) => d()) };
}
