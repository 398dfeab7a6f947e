"""Image retrieval: nearest neighbours, recall@k, embedding extraction."""
