"""What an officer does: enrolment, triage of the unit's tips, questions to tipsters, housekeeping."""
