// Builds the Smart Forms peer page (index.html + main.js) into smart-forms/dist for
// bench/form_bench.py: a production build, so the figures are of minified code.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "error", // not the bundler's notes on the libraries' "use client" directives
  build: { outDir: "dist", emptyOutDir: true },
});
