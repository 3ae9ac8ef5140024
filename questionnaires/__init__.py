"""The packaged instrument library: FHIR R4 Questionnaire JSON files (data, not code)."""
