// Builds the Smart Forms test page (index.html + main.js) into dist/ for
// tests/e2e/test_smart_forms_scores.py.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  logLevel: "error", // not the bundler's notes on the libraries' "use client" directives
  build: { outDir: "dist", emptyOutDir: true },
});
