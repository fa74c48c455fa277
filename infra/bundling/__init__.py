"""Local (Docker-free) bundling of the Lambda assets."""
