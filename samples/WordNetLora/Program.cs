using WordNetLora;

// The README's main job (no arguments): LoRA-tune the embedded WordNet Llama and score held-out answers before and
// after. `build-data` and `init-model` are how the embedded data and base model were made (samples/models/README.md).
return SampleCli.Run(args, Console.Out, Console.Error);
