import torch

# Small networks on 2 cores: one intra-op thread avoids oversubscription (DESIGN.md §8).
torch.set_num_threads(1)
