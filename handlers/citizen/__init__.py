"""What a citizen does: the tip-off questionnaire, its draft and submission, /status."""
