"""Files and media: checkpoints, run folders, video, images, cameras, JSON output."""
