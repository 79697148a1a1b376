using Lora;
using TinyLoraSample;
using TorchSharp;
using static TorchSharp.torch;

// The plan: checked at build time against TinyLm's module tree (a typo such as "fc_inn" is error LORA0001).
[Lora(R = 4, Alpha = 8, Targets = "fc_in|fc_out")]
public partial class TinyLora : TinyLm
{
}

public static class Program
{
    public static int Main(string[] args)
    {
        var steps = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 300;
        var output = args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "tiny-lora-adapter");
        torch.manual_seed(0);

        var config = new TinyConfig
        {
            ModelType = "tiny",
            VocabSize = 16,
            HiddenSize = 32,
            NumLayers = 2,
            NumHeads = 1,
            NumKvHeads = 1,
            HeadDim = 32,
            MaxPositions = 64,
            TieWordEmbeddings = false,
        };
        using var model = new TinyLora(config);    // constructor forwarded by the generator
        model.InitializeWeights();                 // a random "pretrained" base
        model.InjectAdapters();                        // typed: exactly blocks.{0,1}.fc_in / fc_out
        var trainable = model.MarkAdaptersTrainable(); // base frozen, adapters trainable
        model.train();
        Console.WriteLine("LoRA targets: " + string.Join(", ", model.AdapterTargets().Select(t => t.Path)));
        model.PrintTrainableParameters();

        // Toy next-token task: token t is followed by (3t + 1) mod 16.
        var vocab = config.VocabSize;
        using var optimizer = optim.AdamW(trainable.Select(p => p.Parameter), lr: 1e-2);
        for (var step = 1; step <= steps; step++)
        {
            using var scope = NewDisposeScope();
            var inputs = randint(vocab, [32, 8], dtype: ScalarType.Int64);           // (B, T)
            var targets = (inputs * 3 + 1).remainder(vocab);                         // (B, T)
            var logits = model.Forward(inputs);                                      // (B, T, vocab)
            var loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            if (step == 1 || step % 50 == 0)
                Console.WriteLine($"step {step,4}  loss {loss.item<float>():F4}");
        }

        model.eval();
        model.SaveAdapter(output);
        Console.WriteLine($"Saved the PEFT adapter to {output}");
        return 0;
    }
}
