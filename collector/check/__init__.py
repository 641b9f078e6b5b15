"""Pre-deploy checks: which fleet hosts could run an image, and the registry client."""
