"""The assistant service: answers questions from a course's passages, keeps conversations."""
