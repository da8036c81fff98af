"""energy_lib: classifiers read as energy-based models (companion to Mirza et al., ECCV 2024 / 2025).

Modules, one job each:
  energy     energies, delta energies, WEAT weights, TRADES-as-EBM decomposition
  config     config objects and profiles (smoke / default / paper)
  models     ResNet-18, PreActResNet-18, WRN, SmallCNN, the pretrained standard ResNet-18
  data       datasets by name, offline files, subsets, device-side batch iterator
  attacks    PGD / FGSM attacks;  autoattack: the AutoAttack wrapper
  verdicts   statistics with their noise and a verdict from a fixed set (the chapters' claims)
  provenance the git state and machine description every record carries
"""
__version__ = "0.1.0"
