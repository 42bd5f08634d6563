"""Files a store keeps on disk: content-keyed cache entries, model checkpoints, and the lock that serialises steps
on one store."""
