"""Pictures in and out: decoding, atomic outputs, colour transfer, artifacts, reports, layouts."""
