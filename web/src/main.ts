// OpenScan Cloud in the browser: sign in with a token, upload photos, follow processing live, look at the model
// in 3D, download it in every format, share it, and (admin token) run the server. Hash routes:
//   #/            upload + your projects          #/p/<id>            one project
//   #/share/<id>/<signature>  a shared model (no token)   #/admin   the operator's page
import "./style.css";
import { ApiError, api, setToken, token } from "./api";
import { clear, h, toast } from "./dom";
import { adminView } from "./views/admin";
import { homeView } from "./views/home";
import { projectView, sharedView } from "./views/project";

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
let cleanup: (() => void) | null = null;
let me: { kind: string } | null = null;

async function whoAmI(): Promise<typeof me> {
  if (!token()) return null;
  try {
    return await api.get("/api/v1/token");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      setToken(null);
      toast(e.message, "error");
      return null;
    }
    throw e;
  }
}

function renderNav(): void {
  const link = (href: string, label: string) => h("a", { href, "aria-current": location.hash === href ? "page" : null }, label);
  clear(
    nav,
    me ? link("#/", "Scan & projects") : null,
    me?.kind === "admin" ? link("#/admin", "Admin") : null,
    h("a", { href: "/docs" }, "API"),
    me
      ? h("button", { type: "button", class: "link", onclick: () => { setToken(null); me = null; route(); } }, "Sign out")
      : null,
  );
}

function signInView(): HTMLElement {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true, placeholder: "prv_… or pub_…" }) as HTMLInputElement;
  const publicBox = h("div", { class: "public" });
  api.get("/api/v1/public-token").then(
    (p) => publicBox.append(
      h("p", {}, `No token yet? This server offers a shared public token: up to ${p.limit_photos} photos and ${p.daily_credit_gb} GB a day. Projects made with it may be kept for research.`),
      h("button", { type: "button", class: "secondary", onclick: () => signIn(p.token) }, "Use the public token"),
    ),
    () => publicBox.append(h("p", {}, "Ask the operator of this server for a token.")),
  );
  const signIn = async (value: string) => {
    setToken(value.trim());
    me = await whoAmI();
    if (me) route();
  };
  return h(
    "section",
    { class: "card narrow" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Photos in, textured 3D model out. Sign in with your token; this browser remembers it."),
    h("form", { onsubmit: (e: Event) => { e.preventDefault(); signIn(input.value); } },
      h("label", { for: "token" }, "Token"), input, h("button", { type: "submit" }, "Sign in")),
    publicBox,
  );
}

async function route(): Promise<void> {
  cleanup?.();
  cleanup = null;
  const hash = location.hash || "#/";
  const share = hash.match(/^#\/share\/([0-9a-f]{32})\/([0-9a-f]+)$/);
  if (share) {
    renderNav();
    const view = sharedView(share[1], share[2]);
    clear(main, view.element);
    cleanup = view.dispose;
    return;
  }
  if (me === null) me = await whoAmI().catch(() => null);
  renderNav();
  if (!me) {
    clear(main, signInView());
    return;
  }
  const project = hash.match(/^#\/p\/([0-9a-f]{32})$/);
  const view = project ? projectView(project[1]) : hash === "#/admin" ? adminView() : homeView();
  clear(main, view.element);
  cleanup = view.dispose;
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
route();
