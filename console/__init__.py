"""The operator console: group health, the brand's numbers and (later) teaching and publishing."""
