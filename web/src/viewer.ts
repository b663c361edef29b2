// The 3D viewer: the textured GLB with orbit/zoom/pan, light, wireframe and texture toggles, a two-point
// measuring tool, fit-to-view and a screenshot. The preview image shows while the model loads.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { h } from "./dom";

export interface ViewerOptions {
  glbUrl: string;
  previewUrl?: string;
  name: string;
  unitsPerMm?: number | null; // known scale: model units per millimetre
}

export function createViewer(opts: ViewerOptions): { element: HTMLElement; dispose: () => void } {
  const stage = h("div", { class: "viewer-stage" });
  const preview = opts.previewUrl ? h("img", { class: "viewer-preview", src: opts.previewUrl, alt: `Preview of ${opts.name}` }) : null;
  const status = h("p", { class: "viewer-status", role: "status" }, "Loading the model…");
  const readout = h("output", { class: "measure-readout", "aria-live": "polite" });
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  const canvas = renderer.domElement;
  canvas.setAttribute("tabindex", "0");
  canvas.setAttribute("aria-label", `3D view of ${opts.name}: drag to turn, scroll to zoom, right-drag to pan; arrow keys turn, + and - zoom`);
  canvas.dataset.testid = "viewer-canvas";
  stage.append(canvas);
  if (preview) stage.append(preview);
  stage.append(status);

  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xe9eef0);
  const camera = new THREE.PerspectiveCamera(40, 1, 0.001, 1000);
  const controls = new OrbitControls(camera, canvas);
  controls.enableDamping = true;
  controls.listenToKeyEvents(canvas);
  const hemi = new THREE.HemisphereLight(0xffffff, 0x8a8f95, 1.6);
  const sun = new THREE.DirectionalLight(0xffffff, 1.4);
  sun.position.set(1, 2, 1.5);
  scene.add(hemi, sun);

  let model: THREE.Object3D | null = null;
  const materials: THREE.MeshStandardMaterial[] = [];
  const textures = new Map<THREE.MeshStandardMaterial, THREE.Texture | null>();
  let size = 1;

  const fit = () => {
    if (!model) return;
    const box = new THREE.Box3().setFromObject(model);
    const center = box.getCenter(new THREE.Vector3());
    size = box.getSize(new THREE.Vector3()).length() || 1;
    const distance = size / (2 * Math.tan((camera.fov * Math.PI) / 360));
    camera.near = size / 1000;
    camera.far = size * 100;
    camera.position.copy(center).add(new THREE.Vector3(0.55, 0.35, 0.75).normalize().multiplyScalar(distance * 0.9));
    camera.updateProjectionMatrix();
    controls.target.copy(center);
    controls.update();
  };

  const resize = () => {
    const w = stage.clientWidth || 640;
    const hgt = stage.clientHeight || 480;
    renderer.setSize(w, hgt, false);
    camera.aspect = w / hgt;
    camera.updateProjectionMatrix();
  };
  const observer = new ResizeObserver(resize);
  observer.observe(stage);

  new GLTFLoader().load(
    opts.glbUrl,
    (gltf) => {
      model = gltf.scene;
      model.traverse((o) => {
        const mesh = o as THREE.Mesh;
        if (mesh.isMesh) {
          for (const m of Array.isArray(mesh.material) ? mesh.material : [mesh.material]) {
            const mat = m as THREE.MeshStandardMaterial;
            mat.side = THREE.DoubleSide;
            materials.push(mat);
            textures.set(mat, mat.map);
          }
        }
      });
      scene.add(model);
      resize();
      fit();
      status.textContent = "";
      preview?.remove();
      stage.dataset.loaded = "true";
    },
    (e) => {
      if (e.total) status.textContent = `Loading the model… ${Math.round((100 * e.loaded) / e.total)}%`;
    },
    () => {
      status.textContent = "The model could not be loaded. The downloads below still work.";
      stage.dataset.loaded = "error";
    },
  );

  // --- measuring: two picked points on the surface -----------------------------------------------------
  let measuring = false;
  const picked: THREE.Vector3[] = [];
  const marks = new THREE.Group();
  scene.add(marks);
  const raycaster = new THREE.Raycaster();
  const describe = (d: number) =>
    opts.unitsPerMm ? `${(d / opts.unitsPerMm).toFixed(1)} mm` : `${d.toPrecision(4)} model units (no scale known)`;
  const mark = (p: THREE.Vector3) => {
    const dot = new THREE.Mesh(new THREE.SphereGeometry(size * 0.006, 16, 12), new THREE.MeshBasicMaterial({ color: 0xff3d00, depthTest: false }));
    dot.position.copy(p);
    dot.renderOrder = 10;
    marks.add(dot);
  };
  let downAt = { x: 0, y: 0 };
  canvas.addEventListener("pointerdown", (e) => (downAt = { x: e.clientX, y: e.clientY }));
  canvas.addEventListener("pointerup", (e) => {
    if (!measuring || !model || Math.hypot(e.clientX - downAt.x, e.clientY - downAt.y) > 4) return;
    const rect = canvas.getBoundingClientRect();
    raycaster.setFromCamera(new THREE.Vector2(((e.clientX - rect.left) / rect.width) * 2 - 1, -((e.clientY - rect.top) / rect.height) * 2 + 1), camera);
    const hit = raycaster.intersectObject(model, true)[0];
    if (!hit) return;
    if (picked.length === 2) {
      picked.length = 0;
      marks.clear();
    }
    picked.push(hit.point.clone());
    mark(hit.point);
    if (picked.length === 2) {
      const line = new THREE.Line(new THREE.BufferGeometry().setFromPoints(picked), new THREE.LineBasicMaterial({ color: 0xff3d00, depthTest: false }));
      line.renderOrder = 10;
      marks.add(line);
      readout.textContent = `Distance: ${describe(picked[0].distanceTo(picked[1]))}`;
    } else readout.textContent = "Now pick the second point.";
  });

  // --- toolbar -------------------------------------------------------------------------------------------
  const toggle = (label: string, on: boolean, apply: (v: boolean) => void) => {
    const b = h("button", { type: "button", "aria-pressed": String(on) }, label);
    b.addEventListener("click", () => {
      on = !on;
      b.setAttribute("aria-pressed", String(on));
      apply(on);
    });
    return b;
  };
  const light = h("input", { type: "range", min: "0", max: "3", step: "0.1", value: "1.4", "aria-label": "Light" }) as HTMLInputElement;
  light.addEventListener("input", () => {
    sun.intensity = Number(light.value);
    hemi.intensity = 0.6 + Number(light.value) * 0.7;
  });
  const shot = h("button", { type: "button" }, "Screenshot");
  shot.addEventListener("click", () => {
    renderer.render(scene, camera);
    const a = h("a", { href: canvas.toDataURL("image/png"), download: `${opts.name}.png` });
    a.click();
  });
  const toolbar = h(
    "div",
    { class: "toolbar", role: "toolbar", "aria-label": "Viewer" },
    h("button", { type: "button", onclick: fit }, "Fit to view"),
    toggle("Wireframe", false, (v) => materials.forEach((m) => (m.wireframe = v))),
    toggle("Texture", true, (v) =>
      materials.forEach((m) => {
        m.map = v ? textures.get(m) ?? null : null;
        m.needsUpdate = true;
      }),
    ),
    toggle("Measure", false, (v) => {
      measuring = v;
      picked.length = 0;
      marks.clear();
      readout.textContent = v ? "Click two points on the model." : "";
    }),
    h("label", { class: "light" }, "Light ", light),
    shot,
  );

  let running = true;
  const loop = () => {
    if (!running) return;
    controls.update();
    renderer.render(scene, camera);
    requestAnimationFrame(loop);
  };
  loop();

  const element = h("section", { class: "viewer", "aria-label": "3D viewer" }, stage, toolbar, readout);
  return {
    element,
    dispose: () => {
      running = false;
      observer.disconnect();
      controls.dispose();
      renderer.dispose();
    },
  };
}
