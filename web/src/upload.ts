// Resumable upload of one zip in parts over the server's signed part links, with `Content-Range` chunks.
// Progress lives on the server (each part's received offset), so after a network drop or a page reload the
// upload asks the server where each part stands and sends only what is missing.
import { api } from "./api";

export const CHUNK = 4 << 20; // bytes per request: a dropped connection costs at most this much

export interface PartLink {
  index: number;
  url: string;
}

export interface UploadState {
  sent: number;
  total: number;
}

async function serverOffsets(projectId: string): Promise<Map<number, { size: number; complete: boolean }>> {
  const info = await api.get(`/api/v1/projects/${projectId}`);
  return new Map((info.parts || []).map((p: any) => [p.index, { size: p.size, complete: p.complete }]));
}

export async function uploadParts(
  projectId: string,
  zip: Blob,
  links: string[],
  partSize: number,
  onProgress: (s: UploadState) => void,
  signal: { cancelled: boolean },
): Promise<void> {
  let offsets = await serverOffsets(projectId);
  const sentOf = () => [...offsets.values()].reduce((s, p) => s + (p.complete ? p.size : Math.min(p.size, partSize)), 0);
  onProgress({ sent: sentOf(), total: zip.size });
  for (let index = 0; index < links.length; index++) {
    const start = index * partSize;
    const part = zip.slice(start, Math.min(start + partSize, zip.size));
    let failures = 0;
    while (!offsets.get(index)?.complete) {
      if (signal.cancelled) throw new Error("The upload was stopped.");
      const at = offsets.get(index)?.size ?? 0;
      const end = Math.min(at + CHUNK, part.size);
      try {
        const r = await fetch(links[index], {
          method: "PUT",
          headers: { "Content-Range": `bytes ${at}-${end - 1}/${part.size}`, "Content-Type": "application/octet-stream" },
          body: part.slice(at, end),
        });
        const data = await r.json().catch(() => ({}));
        if (r.status === 409 && typeof data.offset === "number") {
          offsets.set(index, { size: data.offset, complete: false });
        } else if (!r.ok) {
          throw new Error(data.detail || data.message || `The server refused part ${index + 1} (${r.status}).`);
        } else {
          offsets.set(index, { size: data.complete ? part.size : data.offset, complete: !!data.complete });
          failures = 0;
        }
      } catch (e) {
        if (e instanceof TypeError) {
          // network trouble: wait, then ask the server how much of the part arrived
          failures++;
          await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** failures, 15000)));
          try {
            offsets = await serverOffsets(projectId);
          } catch {
            /* still offline: try again */
          }
          continue;
        }
        throw e;
      }
      onProgress({ sent: sentOf(), total: zip.size });
    }
  }
}
