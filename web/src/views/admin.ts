// The operator's page (admin token): token requests to approve, tokens (create, revoke, add credit), the queue,
// the workers with their last contact, and the credit ledger.
import { ApiError, api } from "../api";
import { clear, h, toast, when } from "../dom";

function table(headers: string[], rows: (Node | string | number | null)[][], empty: string): HTMLElement {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, ...headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c ?? "—")))))));
}

function section(title: string, id: string): { el: HTMLElement; body: HTMLElement } {
  const body = h("div", { id }, h("p", { class: "muted" }, "Loading…"));
  return { el: h("section", { class: "card", "aria-labelledby": `${id}-h` }, h("h2", { id: `${id}-h` }, title), body), body };
}

export function adminView(): { element: HTMLElement; dispose: () => void } {
  const requests = section("Token requests", "requests");
  const tokens = section("Tokens", "tokens");
  const queue = section("Queue", "queue");
  const workers = section("Workers", "workers");
  const ledger = section("Credit ledger", "ledger");

  const fail = (box: HTMLElement) => (e: ApiError) => clear(box, h("p", { class: "error" }, e.message));
  const act = async (message: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      toast(message);
      load();
    } catch (e) {
      toast((e as Error).message, "error");
    }
  };

  const approvedNote = h("div", { class: "created-token", "aria-live": "polite" });
  const loadRequests = () => api.get("/api/v1/admin/token-requests").then((r) => {
    const pendingRows = (r.requests as any[]).map((q) => [q.name, q.email, when(q.created_at), h("span", { class: `badge ${q.status}` }, q.status),
      q.status === "pending" ? h("button", { type: "button", onclick: () => act(`Approved ${q.email}.`, async () => {
        const a = await api.post(`/api/v1/admin/token-requests/${q.id}/approve`);
        clear(approvedNote, a.mailed
          ? h("p", {}, `The token was e-mailed to ${q.email}.`)
          : h("p", {}, `No e-mail could be sent: give ${q.email} this token yourself (shown only now): `, h("code", {}, a.token ?? "—")));
      }) }, "Approve") : ""]);
    clear(requests.body, table(["Name", "E-mail", "Asked", "Status", ""], pendingRows, "No token requests."), approvedNote);
  }, (e: ApiError) => clear(requests.body, h("p", { class: "muted" }, e.status === 404
    ? "This server does not record token requests (people receive their token by e-mail, or ask you directly)."
    : e.message)));

  const created = h("div", { class: "created-token", "aria-live": "polite" });
  const form = h("form", { class: "inline-form", onsubmit: (e: Event) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(e.target as HTMLFormElement)) as Record<string, string>;
    act("Token created.", async () => {
      const body: any = { kind: data.kind, forename: data.forename || null, surname: data.surname || null, email: data.email || null, label: data.label || null };
      if (data.credit_gb) body.credit_gb = Number(data.credit_gb);
      const t = await api.post("/api/v1/admin/tokens", body);
      clear(created, h("p", {}, "New token (shown only now): ", h("code", {}, t.token)));
      (e.target as HTMLFormElement).reset();
    });
  } },
    h("label", {}, "Kind ", h("select", { name: "kind" }, h("option", { value: "private" }, "private"), h("option", { value: "worker" }, "worker"), h("option", { value: "admin" }, "admin"))),
    h("label", {}, "Forename ", h("input", { name: "forename", autocomplete: "off" })),
    h("label", {}, "Surname ", h("input", { name: "surname", autocomplete: "off" })),
    h("label", {}, "E-mail ", h("input", { name: "email", type: "email", autocomplete: "off" })),
    h("label", {}, "Label ", h("input", { name: "label", autocomplete: "off" })),
    h("label", {}, "Credit GB ", h("input", { name: "credit_gb", type: "number", min: "0", step: "0.1" })),
    h("button", { type: "submit" }, "Create token"));

  const loadTokens = () => api.get("/api/v1/admin/tokens").then((r) => {
    const rows = (r.tokens as any[]).map((t) => {
      const owner = [t.forename, t.surname].filter(Boolean).join(" ") || t.label || "";
      const credit = h("input", { type: "number", min: "0.1", step: "0.1", value: "1", "aria-label": `GB to add to token ${t.id}`, class: "small" }) as HTMLInputElement;
      return [t.id, t.kind, h("span", { class: `badge ${t.status}` }, t.status), h("code", {}, t.hint), `${owner}${t.email ? ` <${t.email}>` : ""}`,
        t.kind === "private" ? `${t.credit_gb.toFixed(2)} GB` : "—",
        h("span", { class: "row-actions" },
          t.kind === "private" ? h("span", {}, credit, h("button", { type: "button", class: "secondary", onclick: () => act("Credit added.", () => api.post(`/api/v1/admin/tokens/${t.id}/credit`, { amount_gb: Number(credit.value) })) }, "Add GB")) : null,
          t.status !== "revoked" && t.kind !== "public" ? h("button", { type: "button", class: "danger", onclick: () => { if (confirm(`Revoke token ${t.hint}…?`)) act("Token revoked.", () => api.post(`/api/v1/admin/tokens/${t.id}/revoke`)); } }, "Revoke") : null)];
    });
    clear(tokens.body, table(["Id", "Kind", "Status", "Hint", "Owner", "Credit", ""], rows, "No tokens."), h("h3", {}, "New token"), form, created);
  }, fail(tokens.body));

  const loadQueue = () => api.get("/api/v1/admin/queue").then((q) => {
    const rows = [...q.running, ...q.queued].map((j: any) => [j.project, j.status, j.quality, j.stage, `${j.progress}%`, j.attempt, when(j.queued_at)]);
    clear(queue.body, table(["Project", "Status", "Quality", "Stage", "Progress", "Attempt", "Queued"], rows, "Nothing is waiting or running."));
  }, fail(queue.body));

  const loadWorkers = () => api.get("/api/v1/admin/workers").then((w) => {
    const rows = (w.workers as any[]).map((x) => [x.name, h("span", { class: `badge ${x.online ? "done" : "failed"}` }, x.online ? "online" : "offline"),
      `${x.cpus} CPU, ${(x.ram_mb / 1024).toFixed(1)} GB${x.gpu ? `, ${x.gpu}` : ""}`,
      x.current_job ? `${x.current_job.stage ?? "starting"} ${x.current_job.progress}%` : "idle",
      `${Math.round(x.last_seen_seconds_ago)} s ago`]);
    clear(workers.body, table(["Name", "State", "Hardware", "Job", "Last contact"], rows, "No worker was seen in the last 24 hours."));
  }, fail(workers.body));

  const loadLedger = () => api.get("/api/v1/admin/ledger?limit=50").then((l) => {
    const rows = (l.entries as any[]).map((e) => [when(e.created_at), e.token_id, e.kind, `${e.amount_gb > 0 ? "+" : ""}${e.amount_gb.toFixed(3)} GB`, e.reason]);
    clear(ledger.body, table(["When", "Token", "Kind", "Amount", "Reason"], rows, "No credit movements yet."));
  }, fail(ledger.body));

  const load = () => { loadRequests(); loadTokens(); loadQueue(); loadWorkers(); loadLedger(); };
  load();
  const timer = setInterval(() => { loadQueue(); loadWorkers(); }, 5000);
  const element = h("div", { class: "admin" }, h("h1", {}, "Administration"), requests.el, tokens.el, queue.el, workers.el, ledger.el);
  return { element, dispose: () => clearInterval(timer) };
}
