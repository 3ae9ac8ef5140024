// Smart Forms' documented usage (smartforms.csiro.au/docs/dev/renderer-overview), without JSX:
// buildForm takes the Questionnaire and a filled QuestionnaireResponse, BaseRenderer inside
// RendererThemeProvider and the renderer's QueryClientProvider draws it, and getResponse reads
// the response back with the calculated items the renderer computed.
import {
  BaseRenderer,
  buildForm,
  getResponse,
  RendererThemeProvider,
  useRendererQueryClient,
} from "@aehrc/smart-forms-renderer";
import { QueryClientProvider } from "@tanstack/react-query";
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";

function Form() {
  const queryClient = useRendererQueryClient();
  return h(
    RendererThemeProvider,
    null,
    h(QueryClientProvider, { client: queryClient }, h(BaseRenderer)),
  );
}

const root = createRoot(document.getElementById("form"));

// sdcQuestionnaire: give expressions SDC's %questionnaire, which Smart Forms 1.4.0 does not set
// itself; its documented additionalContext is how a host supplies it.
window.renderForm = async (questionnaire, questionnaireResponse, terminologyServerUrl, sdcQuestionnaire) => {
  const additionalContext = sdcQuestionnaire ? { questionnaire } : {};
  await buildForm({ questionnaire, questionnaireResponse, terminologyServerUrl, additionalContext });
  root.render(h(Form));
};
window.smartFormsResponse = getResponse;
window.smartFormsReady = true;
