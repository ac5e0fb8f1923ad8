import zoo


@zoo.hookimpl
def register_encoders(register):
    register("char-counts", "zoo_plugin_example.encoder:CharCounts", modality="text",
             outputs=("pooled",), dim=26, description="Letter histogram of a text (a-z).")


@zoo.hookimpl
def register_models(register):
    register("char-clf", {"task": "classification",
                          "description": "Letter-histogram text classifier.",
                          "encoders": {"text": "char-counts"},
                          "fusion": {"name": "concat-mlp", "dim": 16},
                          "head": {"name": "classification", "labels": ["a", "b"]}})


@zoo.hookimpl
def register_commands(cli):
    @cli.command("hello-example")
    def hello():
        """Say hello from the example plugin."""
        print("hello from zoo-plugin-example")
