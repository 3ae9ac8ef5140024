// Smart Forms' documented basic usage (smartforms.csiro.au/docs/dev/renderer-overview), without
// JSX: useBuildForm builds the form from the Questionnaire the bench serves, then BaseRenderer
// inside RendererThemeProvider and the renderer's QueryClientProvider renders it.
import {
  BaseRenderer,
  getResponse,
  RendererThemeProvider,
  useBuildForm,
  useRendererQueryClient,
} from "@aehrc/smart-forms-renderer";
import { QueryClientProvider } from "@tanstack/react-query";
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";

function Form({ questionnaire }) {
  const queryClient = useRendererQueryClient();
  const isBuilding = useBuildForm({ questionnaire, terminologyServerUrl });
  if (isBuilding) {
    return h("div", null, "Loading...");
  }
  return h(
    RendererThemeProvider,
    null,
    h(QueryClientProvider, { client: queryClient }, h(BaseRenderer)),
  );
}

// The bench reads the answers back through the renderer's own API to check each click counted.
window.smartFormsResponse = getResponse;
// Code displays the Questionnaire leaves out are looked up here (CodeSystem/$lookup), on the
// bench's loopback server, instead of the public terminology server Smart Forms defaults to.
const terminologyServerUrl = new URL("fhir", document.baseURI).href;
const questionnaire = await (await fetch("ecr-r.json")).json();
createRoot(document.getElementById("form")).render(h(Form, { questionnaire }));
