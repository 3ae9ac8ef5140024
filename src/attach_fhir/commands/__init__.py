"""Domain sub-commands of the ``attach-fhir`` console script, one module per noun."""
