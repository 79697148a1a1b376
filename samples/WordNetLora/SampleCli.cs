using System.CommandLine;
using Lora;
using WordNetLora.Data;

namespace WordNetLora;

/// <summary>The sample's command line. A user error (<see cref="LoraException"/>, a bad option) is one
/// <c>error:</c> line on stderr and exit code 1, as with the <c>lora</c> command.</summary>
public static class SampleCli
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var defaults = new JobOptions();
        var model = new Option<string>("--model") { Description = "A Llama-family Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer.json).", DefaultValueFactory = _ => defaults.Model };
        var data = new Option<string?>("--data") { Description = "Training data: Alpaca JSON/JSONL {instruction, input, output} (default: the embedded WordNet instructions)." };
        var evalData = new Option<string?>("--eval-data") { Description = "Held-out Alpaca data, scored by exact match before and after (required with --data)." };
        var output = new Option<string>("--out") { Description = "Output directory (must be empty unless --overwrite).", DefaultValueFactory = _ => defaults.Output };
        var overwrite = new Option<bool>("--overwrite") { Description = "Train into a non-empty output directory (its old checkpoints and runs/ are removed)." };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or cuda:N.", DefaultValueFactory = _ => defaults.Device };
        var steps = new Option<int>("--max-steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => defaults.MaxSteps };
        var lr = new Option<double>("--learning-rate") { Description = "Peak learning rate (cosine schedule).", DefaultValueFactory = _ => defaults.LearningRate };
        var batch = new Option<int>("--batch-size") { Description = "Examples per step.", DefaultValueFactory = _ => defaults.BatchSize };
        var evalSteps = new Option<int>("--eval-steps") { Description = "Evaluate the held-out loss every N steps (and at step 0 and the end).", DefaultValueFactory = _ => defaults.EvalSteps };
        var maxLength = new Option<int>("--max-length") { Description = "Examples are cut to this many tokens.", DefaultValueFactory = _ => defaults.MaxLength };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens per generated answer at most.", DefaultValueFactory = _ => defaults.MaxNewTokens };
        var seed = new Option<int>("--seed") { Description = "Seed for the adapter init and the data order.", DefaultValueFactory = _ => defaults.Seed };
        var root = new RootCommand("WordNetLora: LoRA-tune a Llama on instructions and score held-out answers (exact match) before and after.")
        {
            model, data, evalData, output, overwrite, device, steps, lr, batch, evalSteps, maxLength, maxNew, seed,
        };
        root.SetAction(parse =>
        {
            var trainFile = parse.GetValue(data);
            var evalFile = parse.GetValue(evalData);
            if (trainFile is not null && evalFile is null)
                throw new LoraException("--data needs --eval-data FILE: the held-out examples scored before and after training.");
            return MainJob.Run(new JobOptions
            {
                Model = parse.GetValue(model)!,
                TrainData = trainFile ?? defaults.TrainData,
                EvalData = evalFile ?? defaults.EvalData,
                Output = parse.GetValue(output)!,
                Overwrite = parse.GetValue(overwrite),
                Device = parse.GetValue(device)!,
                MaxSteps = parse.GetValue(steps),
                LearningRate = parse.GetValue(lr),
                BatchSize = parse.GetValue(batch),
                EvalSteps = parse.GetValue(evalSteps),
                MaxLength = parse.GetValue(maxLength),
                MaxNewTokens = parse.GetValue(maxNew),
                Seed = parse.GetValue(seed),
            });
        });
        root.Add(DataCommands.BuildData());
        root.Add(DataCommands.InitModel());
        root.Add(DataCommands.SplitData());

        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                foreach (var error in parsed.Errors)
                    stderr.WriteLine($"error: {error.Message}");
                stderr.WriteLine("(run with --help for the options)");
                return 1;
            }

            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (LoraException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
