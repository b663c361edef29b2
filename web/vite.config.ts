// The web app is built into the Python package (openscancloud/web_dist) and served by the API process at `/`
// (index.html) and `/app/` (everything else). Swagger UI and ReDoc are copied from npm into `vendor/` so that
// `/docs` works without internet.
import { cpSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";

const outDir = resolve(import.meta.dirname, "../src/openscancloud/web_dist");

function vendorDocs(): Plugin {
  return {
    name: "vendor-docs",
    closeBundle() {
      const vendor = resolve(outDir, "vendor");
      mkdirSync(vendor, { recursive: true });
      const swagger = resolve(import.meta.dirname, "node_modules/swagger-ui-dist");
      for (const f of ["swagger-ui-bundle.js", "swagger-ui.css"]) cpSync(resolve(swagger, f), resolve(vendor, f));
      cpSync(resolve(import.meta.dirname, "node_modules/redoc/bundles/redoc.standalone.js"), resolve(vendor, "redoc.standalone.js"));
    },
  };
}

export default defineConfig({
  base: "/app/",
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 1500, sourcemap: false },
  plugins: [vendorDocs()],
});
