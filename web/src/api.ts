// The server's REST API as the browser uses it: the token (remembered in localStorage), the per-project key
// that public-token projects carry (sent as X-Project-Key), errors turned into the server's sentence, and live
// status by a fetch()-streamed server-sent events feed with a polling fallback.
export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly code?: string, readonly body?: any) {
    super(message);
  }
}

const TOKEN_KEY = "osc.token";
const PROJECT_KEYS = "osc.projectKeys";

export function token(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}
export function setToken(value: string | null): void {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

function keys(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(PROJECT_KEYS) || "{}");
  } catch {
    return {};
  }
}
/** Projects this browser holds a key for (public-token projects, which the server lists to nobody). */
export function rememberedProjects(): string[] {
  return Object.keys(keys());
}

export function rememberProjectKey(projectId: string, key: string | null | undefined): void {
  if (!key) return;
  const all = keys();
  all[projectId] = key;
  localStorage.setItem(PROJECT_KEYS, JSON.stringify(all));
}

function projectIdOf(path: string): string | null {
  const m = path.match(/^\/api\/v1\/projects\/([0-9a-f]{32})/);
  return m ? m[1] : null;
}

export function headers(path: string, extra: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  const pid = projectIdOf(path);
  const key = pid ? keys()[pid] : undefined;
  if (key) out["X-Project-Key"] = key;
  return out;
}

export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(path, body !== undefined ? { "Content-Type": "application/json" } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new ApiError("The server cannot be reached; check your connection.", 0, "network");
  }
  if (response.status === 204) return undefined as T;
  let data: any = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data?.detail || data?.message || `The server answered ${response.status}.`;
    throw new ApiError(typeof message === "string" ? message : JSON.stringify(message), response.status, data?.code ?? data?.error, data);
  }
  if (data && typeof data === "object" && data.id && data.project_key) rememberProjectKey(data.id, data.project_key);
  return data as T;
}

export const api = {
  get: <T = any>(path: string) => call<T>("GET", path),
  post: <T = any>(path: string, body?: unknown) => call<T>("POST", path, body ?? {}),
  del: (path: string) => call("DELETE", path),
};

/** Follow a project: `onStatus` gets every new state until a terminal one. Returns a stop function.
 *  Server-sent events by fetch() streaming (so the Authorization header goes along); when the server has no
 *  events endpoint (404) or the stream breaks, it polls every few seconds instead. */
export function follow(projectId: string, onStatus: (p: any) => void, onError: (e: Error) => void): () => void {
  let stopped = false;
  const controller = new AbortController();
  const terminal = (p: any) => ["done", "failed", "cancelled", "expired"].includes(p?.status);

  const poll = async () => {
    let last = "";
    while (!stopped) {
      try {
        const p = await api.get(`/api/v1/projects/${projectId}`);
        const text = JSON.stringify(p);
        if (text !== last) onStatus(p);
        last = text;
        if (terminal(p)) return;
      } catch (e) {
        onError(e as Error);
        if ((e as ApiError).status === 404 || (e as ApiError).status === 403) return;
      }
      await new Promise((r) => setTimeout(r, 2500));
    }
  };

  const stream = async () => {
    const path = `/api/v1/projects/${projectId}/events`;
    let response: Response;
    try {
      response = await fetch(path, { headers: headers(path, { Accept: "text/event-stream" }), signal: controller.signal });
    } catch {
      if (!stopped) poll();
      return;
    }
    if (!response.ok || !response.body || !(response.headers.get("content-type") || "").includes("text/event-stream")) {
      if (!stopped) poll();
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let lastStatus: any = null;
    try {
      while (!stopped) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut: number;
        while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
          let event = "message";
          const data: string[] = [];
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(":")) continue;
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (event === "status" && data.length) {
            lastStatus = JSON.parse(data.join("\n"));
            onStatus(lastStatus);
          }
        }
      }
    } catch {
      /* aborted or broken: fall through */
    }
    if (!stopped && !terminal(lastStatus)) poll();
  };

  stream();
  return () => {
    stopped = true;
    controller.abort();
  };
}
