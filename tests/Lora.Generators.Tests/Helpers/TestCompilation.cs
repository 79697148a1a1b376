using System.Collections.Immutable;
using Basic.Reference.Assemblies;
using Lora.Generators;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Lora.Generators.Tests.Helpers;

/// <summary>Compilations against the real references (.NET 10 reference assemblies, TorchSharp, Lora.Runtime) and a
/// generator driver that tracks incremental steps.</summary>
internal static class TestCompilation
{
    public static readonly CSharpParseOptions ParseOptions = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Latest);

    public static ImmutableArray<MetadataReference> References { get; } =
    [
        .. Net100.References.All,
        MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location),
        MetadataReference.CreateFromFile(typeof(Lora.Tuners.LoRA.LoraConfig).Assembly.Location),
    ];

    public static CSharpCompilation Create(params string[] sources) =>
        CSharpCompilation.Create(
            "LoraGeneratorTests",
            sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, ParseOptions, path: $"Input{i}.cs")),
            References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable)
                // As the SDK does: TorchSharp is built against an older System.Runtime (unification notes).
                .WithSpecificDiagnosticOptions(new Dictionary<string, ReportDiagnostic> { ["CS1701"] = ReportDiagnostic.Suppress, ["CS1702"] = ReportDiagnostic.Suppress }));

    public static GeneratorDriver CreateDriver() =>
        CSharpGeneratorDriver.Create(
            [new LoraModelGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator once; returns the run result and the compilation with the generated sources.</summary>
    public static (GeneratorDriverRunResult Result, Compilation Output) Run(Compilation compilation)
    {
        var driver = CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
        return (driver.GetRunResult(), output);
    }

    /// <summary>Errors and warnings of <paramref name="compilation"/> (hidden/info diagnostics dropped).</summary>
    public static IReadOnlyList<Diagnostic> Problems(Compilation compilation) =>
        compilation.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToList();

    /// <summary>The repository root (the folder with Directory.Packages.props).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string SnapshotsDirectory => Path.Combine(RepoRoot, "tests", "Lora.Generators.Tests", "Snapshots");

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props")))
                return dir.FullName;
        }

        throw new InvalidOperationException("Directory.Packages.props not found above " + AppContext.BaseDirectory);
    }
}
