import zoo


@zoo.hookimpl
def register_encoders(register):
    register("bert-tiny", "zoo_plugin_example.encoder:CharCounts", modality="text",
             outputs=("pooled",), dim=26, description="Clashes with zoo-text-hf's bert-tiny.")
