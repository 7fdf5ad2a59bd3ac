"""The courses service: courses, lessons, enrolment, progress and the publishing pipeline."""
