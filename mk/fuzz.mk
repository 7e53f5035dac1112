# Fuzzing (issue 5): placeholder until the fuzz targets land.
.PHONY: test-fuzz-short fuzz
test-fuzz-short:
	@true
fuzz:
	@true
