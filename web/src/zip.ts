// A deterministic, uncompressed ("stored") zip of the chosen photos, built as a Blob that references the
// files instead of copying them. Deterministic on purpose: after a reload the same photos give the same bytes,
// so an interrupted upload continues where it stopped. Photos do not compress, so storing costs nothing.
const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

async function crc32(file: Blob): Promise<number> {
  let crc = 0xffffffff;
  const step = 8 << 20;
  for (let offset = 0; offset < file.size; offset += step) {
    const data = new Uint8Array(await file.slice(offset, offset + step).arrayBuffer());
    for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function dosTime(ms: number): [number, number] {
  const d = new Date(Math.max(ms, Date.UTC(1980, 0, 1)));
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2);
  const date = ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate();
  return [time, date];
}

export interface Photo {
  name: string;
  file: File;
}

export const ZIP_LIMIT = 0xffffffff; // the plain zip format's size limit (4 GiB)

export async function storedZip(photos: Photo[], onProgress: (done: number, total: number) => void): Promise<Blob> {
  const parts: BlobPart[] = [];
  const central: Uint8Array[] = [];
  const encoder = new TextEncoder();
  let offset = 0;
  const total = photos.reduce((s, p) => s + p.file.size, 0);
  let hashed = 0;
  for (const photo of photos) {
    const name = encoder.encode(photo.name);
    const crc = await crc32(photo.file);
    hashed += photo.file.size;
    onProgress(hashed, total);
    const [time, date] = dosTime(photo.file.lastModified);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, 0x0800, true); // UTF-8 names
    local.setUint16(8, 0, true); // stored
    local.setUint16(10, time, true);
    local.setUint16(12, date, true);
    local.setUint32(14, crc, true);
    local.setUint32(18, photo.file.size, true);
    local.setUint32(22, photo.file.size, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    parts.push(local.buffer, name, photo.file);
    const entry = new DataView(new ArrayBuffer(46));
    entry.setUint32(0, 0x02014b50, true);
    entry.setUint16(4, 20, true);
    entry.setUint16(6, 20, true);
    entry.setUint16(8, 0x0800, true);
    entry.setUint16(10, 0, true);
    entry.setUint16(12, time, true);
    entry.setUint16(14, date, true);
    entry.setUint32(16, crc, true);
    entry.setUint32(20, photo.file.size, true);
    entry.setUint32(24, photo.file.size, true);
    entry.setUint16(28, name.length, true);
    entry.setUint32(42, offset, true);
    const record = new Uint8Array(46 + name.length);
    record.set(new Uint8Array(entry.buffer), 0);
    record.set(name, 46);
    central.push(record);
    offset += 30 + name.length + photo.file.size;
    if (offset > ZIP_LIMIT) throw new Error("Together the photos are larger than 4 GB; upload them as a zip made with a zip64 tool.");
  }
  const size = central.reduce((s, c) => s + c.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, photos.length, true);
  end.setUint16(10, photos.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...(central as BlobPart[]), end.buffer], { type: "application/zip" });
}
