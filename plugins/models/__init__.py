"""PyTorch definitions of the networks the reports train from scratch on Tiny ImageNet.

- ``zhai``: bottleneck ResNet-20 / ResNet-38 and their "less filters" variants (Zhai).
- ``yu``: the one-layer baseline, the reduced AlexNet and the half-width GoogLeNet (Yu).
- ``milani``: the shallower, narrower Inception-v3 for 64x64 input (Milani).
- ``lenet``: LeNet5 for 3x64x64 input (Fleuret's lecture).

Each builder takes ``num_classes`` and returns an ``nn.Module`` that maps a batch of
RGB images (native size 64x64 or 56x56, see each module) to logits of shape
``(batch, num_classes)``.
"""
