"""The contrastive family: InfoNCE, NT-Xent, SupCon, CLIP and SigLIP, tiled at any batch size."""
