// Fetch the Questionnaire the bench serves and render it with LHC-Forms' documented API.
fetch("ecr-r.json")
  .then((response) => response.json())
  .then((questionnaire) => LForms.Util.addFormToPage(questionnaire, "form", { fhirVersion: "R4" }));
