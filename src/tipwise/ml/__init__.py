"""Machine learning: stateless scoring (`serving`) and learning (`pipelines`)."""
