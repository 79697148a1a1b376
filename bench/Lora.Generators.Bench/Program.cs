using System.Diagnostics;
using System.Globalization;
using Lora.Generators;
using Lora.Generators.Helpers;
using Lora.Generators.Bench;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

// Generator cost on a synthetic project: `dotnet run -c Release --project bench/Lora.Generators.Bench [-- models iterations]`.
// Full run: a fresh driver over the whole compilation. Incremental: a warm driver after one edit (a comment in one model
// file; the Targets of one model; an unrelated file). Medians over the iterations, after warm-up runs.
var models = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
var iterations = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20;
var compilation = SyntheticProject.Create(models);

GeneratorDriver NewDriver() => CSharpGeneratorDriver.Create(
    [new LoraModelGenerator().AsSourceGenerator()],
    parseOptions: SyntheticProject.ParseOptions,
    driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

// Sanity: every model generates, and the synthetic project compiles with the output.
var check = NewDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
var sources = check.GetRunResult().Results.Single().GeneratedSources.Length;
var errors = output.GetDiagnostics().Count(d => d.Severity == DiagnosticSeverity.Error);
Console.WriteLine($"{models} models, {sources} generated files, {errors} compile errors");
if (errors > 0)
{
    foreach (var d in output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5))
        Console.WriteLine(d);
    return 1;
}

double Median(List<double> xs)
{
    xs.Sort();
    return xs[xs.Count / 2];
}

var full = new List<double>();
for (var i = 0; i < iterations + 3; i++)
{
    var driver = NewDriver();
    var sw = Stopwatch.StartNew();
    driver.RunGenerators(compilation);
    sw.Stop();
    if (i >= 3)
        full.Add(sw.Elapsed.TotalMilliseconds);
}

(double Ms, string Reasons) Edit(Func<int, CSharpCompilation> edited)
{
    var times = new List<double>();
    var reasons = string.Empty;
    for (var i = 0; i < iterations + 3; i++)
    {
        var warm = NewDriver().RunGenerators(compilation);
        var next = edited(i);
        var sw = Stopwatch.StartNew();
        warm = warm.RunGenerators(next);
        sw.Stop();
        if (i >= 3)
            times.Add(sw.Elapsed.TotalMilliseconds);
        var steps = warm.GetRunResult().Results.Single().TrackedSteps;
        reasons = string.Join(", ", steps[WellKnownTrackingNames.Execute].SelectMany(s => s.Outputs).GroupBy(o => o.Reason).OrderBy(g => g.Key.ToString()).Select(g => $"{g.Key} {g.Count()}"));
    }

    return (Median(times), reasons);
}

CSharpCompilation ReplaceModel(int index, string source) =>
    compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(t => t.FilePath == $"Model{index}.cs"), SyntheticProject.Parse(source, index));

var comment = Edit(i => ReplaceModel(7, SyntheticProject.ModelSource(7, $"// edit {i}")));
var attribute = Edit(i => ReplaceModel(0, SyntheticProject.ModelSource(0).Replace("R = 8", $"R = {8 + i % 2 + 1}", StringComparison.Ordinal)));
var unrelated = Edit(i => compilation.ReplaceSyntaxTree(compilation.SyntaxTrees.First(t => t.FilePath == "Helper0.cs"),
    CSharpSyntaxTree.ParseText($"namespace Synthetic.Plain;\npublic static class Helper0 {{ public static int Twice(int x) => {i} + 2 * x - {i}; }}\n", SyntheticProject.ParseOptions, path: "Helper0.cs")));

Console.WriteLine();
Console.WriteLine($"| Run ({models} models, median of {iterations}) | Time (ms) | Execute step outputs |");
Console.WriteLine("|---|---:|---|");
Console.WriteLine($"| full (fresh driver) | {Median(full):F1} | all New |");
Console.WriteLine($"| incremental: comment in one model file | {comment.Ms:F1} | {comment.Reasons} |");
Console.WriteLine($"| incremental: Targets/R of one model changed | {attribute.Ms:F1} | {attribute.Reasons} |");
Console.WriteLine($"| incremental: unrelated file edited | {unrelated.Ms:F1} | {unrelated.Reasons} |");
return 0;
