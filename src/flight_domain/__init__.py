"""What the pipeline decides about a flight, shared by both functions, the tracker and the tools:
the flight-processor's transformation (flight_transform), geofence geometry (geofence) and the
fences' S3 reader (geofence_source), the alert rules (alert_rules) and the alerts side's shared
settings (alert_declarations). Shipped inside the Lambda zip as a package (infra/deploy/lambda_package.py),
so the tracker's map and the recount run the functions' own code."""
