using System.Diagnostics;
using System.Globalization;
using Lora.Generators;
using Lora.Generators.Helpers;
using Lora.Generators.Bench;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

// Generator cost on a synthetic project: `dotnet run -c Release --project bench/Lora.Generators.Bench [-- models iterations]`.
// Full run: a fresh driver over the whole compilation. Incremental: a warm driver after one edit (a comment in one model
// file; the Targets of one model; an unrelated file). Medians over the iterations, after warm-up runs, each beside the
// same run of a do-nothing generator with the same pipelines (FloorGenerator: Roslyn's own cost).
var models = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
var iterations = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20;
var compilation = SyntheticProject.Create(models);

GeneratorDriver NewDriver(IIncrementalGenerator generator) => CSharpGeneratorDriver.Create(
    [generator.AsSourceGenerator()],
    parseOptions: SyntheticProject.ParseOptions,
    driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

// Sanity: every model generates, and the synthetic project compiles with the output.
var check = NewDriver(new LoraModelGenerator()).RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
var sources = check.GetRunResult().Results.Single().GeneratedSources.Length;
var errors = output.GetDiagnostics().Count(d => d.Severity == DiagnosticSeverity.Error);
Console.WriteLine($"{models} models, {sources} generated files, {errors} compile errors");
if (errors > 0)
{
    foreach (var d in output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5))
        Console.WriteLine(d);
    return 1;
}

// Steady state, as in a long-lived compiler server or IDE: enough warm-up runs for the JIT's tiered compilation to
// promote the hot methods of Roslyn and the generator, then a pause for its background compiler to finish.
const int Warmup = 30;
for (var i = 0; i < Warmup; i++)
{
    NewDriver(new LoraModelGenerator()).RunGenerators(compilation);
    NewDriver(new FloorGenerator()).RunGenerators(compilation);
}

Thread.Sleep(1000);

double Median(List<double> xs)
{
    xs.Sort();
    return xs[xs.Count / 2];
}

// Each measurement alternates ours and the floor generator, iteration by iteration, so that both see the same
// machine load (the VM's other work moves single medians by 2-3x).
(double Ours, double Floor) Full()
{
    var ours = new List<double>();
    var floor = new List<double>();
    for (var i = 0; i < iterations + Warmup; i++)
    {
        foreach (var (generator, times) in new (IIncrementalGenerator, List<double>)[] { (new LoraModelGenerator(), ours), (new FloorGenerator(), floor) })
        {
            var driver = NewDriver(generator);
            var sw = Stopwatch.StartNew();
            driver.RunGenerators(compilation);
            sw.Stop();
            if (i >= Warmup)
                times.Add(sw.Elapsed.TotalMilliseconds);
        }
    }

    return (Median(ours), Median(floor));
}

(double Ours, double Floor, string Reasons) Edit(Func<int, CSharpCompilation> edited)
{
    var ours = new List<double>();
    var floor = new List<double>();
    var reasons = string.Empty;
    for (var i = 0; i < iterations + Warmup; i++)
    {
        foreach (var (generator, times) in new (IIncrementalGenerator, List<double>)[] { (new LoraModelGenerator(), ours), (new FloorGenerator(), floor) })
        {
            // A fresh edited compilation each: the first driver to use one pays its lazily computed state.
            var next = edited(i);
            var warm = NewDriver(generator).RunGenerators(compilation);
            var sw = Stopwatch.StartNew();
            warm = warm.RunGenerators(next);
            sw.Stop();
            if (i >= Warmup)
                times.Add(sw.Elapsed.TotalMilliseconds);
            if (generator is LoraModelGenerator)
            {
                var steps = warm.GetRunResult().Results.Single().TrackedSteps;
                reasons = string.Join(", ", steps[WellKnownTrackingNames.Execute].SelectMany(s => s.Outputs).GroupBy(o => o.Reason).OrderBy(g => g.Key.ToString()).Select(g => $"{g.Key} {g.Count()}"));
            }
        }
    }

    return (Median(ours), Median(floor), reasons);
}

CSharpCompilation ReplaceModel(int index, string source) =>
    compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(t => t.FilePath == $"Model{index}.cs"), SyntheticProject.Parse(source, index));

var full = Full();
var comment = Edit(i => ReplaceModel(7, SyntheticProject.ModelSource(7, $"// edit {i}")));
var attribute = Edit(i => ReplaceModel(0, SyntheticProject.ModelSource(0).Replace("R = 8", $"R = {8 + i % 2 + 1}", StringComparison.Ordinal)));
var unrelated = Edit(i => compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(t => t.FilePath == "Helper0.cs"),
    CSharpSyntaxTree.ParseText($"namespace Synthetic.Plain;\npublic static class Helper0 {{ public static int Twice(int x) => {i} + 2 * x - {i}; }}\n", SyntheticProject.ParseOptions, path: "Helper0.cs")));

Console.WriteLine();
Console.WriteLine($"| Run ({models} models, median of {iterations}) | ours (ms) | floor: do-nothing generator (ms) | ours − floor (ms) | Execute step outputs |");
Console.WriteLine("|---|---:|---:|---:|---|");
Console.WriteLine($"| full (fresh driver) | {full.Ours:F1} | {full.Floor:F1} | {full.Ours - full.Floor:F1} | all New |");
foreach (var (name, e) in new[] { ("incremental: comment in one model file", comment), ("incremental: Targets/R of one model changed", attribute), ("incremental: unrelated file edited", unrelated) })
    Console.WriteLine($"| {name} | {e.Ours:F1} | {e.Floor:F1} | {e.Ours - e.Floor:F1} | {e.Reasons} |");
return 0;
