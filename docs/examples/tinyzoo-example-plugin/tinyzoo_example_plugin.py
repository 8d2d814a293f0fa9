"""An example tinyzoo plugin: a tiny CNN for 64x64 input, an adapter step of its own, and a
recipe that trains it.

Install it with ``pip install ./docs/examples/tinyzoo-example-plugin``; then
``tinyzoo list tiny_cnn`` and ``tinyzoo plugins`` show it, and ``tinyzoo adapt tiny_cnn
--weights none --out tiny`` runs its adapter step.
"""

import tinyzoo


def build_tiny_cnn(num_classes: int = 200, width: int = 32):
    """A four-layer CNN; torch is imported here so that listing stays torch-free."""
    from torch import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(
        block(3, width), block(width, 2 * width), block(2 * width, 4 * width), block(4 * width, 8 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, num_classes),
    )


@tinyzoo.hookimpl
def register_architectures(register):
    register(
        tinyzoo.ArchitectureSpec(
            name="tiny_cnn",
            family="tiny_cnn",
            source="tinyzoo",
            builder="tinyzoo_example_plugin:build_tiny_cnn",
            input_size=64,
            num_classes=200,
            stems=("keep",),
            params=440_296,
            first_conv="0.0",
            classifier="6",
            options={"width": "channels of the first block"},
            description="A four-layer CNN from the example plugin",
        )
    )


def head_dropout(model, spec, *, p: float = 0.2):
    """Dropout in front of the tiny CNN's classifier: no tensor changes, and in eval mode the
    network computes what it did before. Returns the model and what changed."""
    from torch import nn

    from tinyzoo.adapt_report import Changes

    model[5] = nn.Sequential(nn.Flatten(), nn.Dropout(p))  # model[5] is the Flatten
    return model, Changes().note(f"dropout {p} before the classifier")


@tinyzoo.hookimpl
def register_adapters(register):
    register(tinyzoo.AdapterSpec(
        name="tiny-cnn-dropout",
        role="head-dropout",  # a step of this plugin's own, not one of tinyzoo's roles ...
        order=250,  # ... so it needs an order: after the head (200), before convolutionize (300)
        families=("tiny_cnn",),
        apply="tinyzoo_example_plugin:head_dropout",
        description="dropout 0.2 in front of the classifier",
    ))


@tinyzoo.hookimpl
def register_recipes(register):
    register(
        tinyzoo.RecipeSpec(
            name="example-tiny-cnn",
            description="Train the example plugin's tiny CNN from scratch",
            data={
                "description": "Train the example plugin's tiny CNN from scratch",
                "model": {"arch": "tiny_cnn", "weights": "none"},
                "stages": [
                    {
                        "name": "all",
                        "train": "all",
                        "epochs": 10,
                        "batch_size": 128,
                        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                        "schedule": {"name": "cosine"},
                    }
                ],
            },
        )
    )
