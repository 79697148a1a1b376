using System.Reflection;

namespace Lora.PackageTests;

/// <summary>
/// Packs the Lora package once for all package tests: <c>dotnet pack src/Lora.Runtime/Lora.Runtime.csproj -c Release</c>
/// on a snapshot of this repository's sources (so it neither shares obj/ with, nor rewrites the restore state of, the
/// working tree), with a unique prerelease version, into a temporary feed.
/// </summary>
public sealed class PackageFixture : IDisposable
{
    public const string PackageId = "Lora";

    public PackageFixture()
    {
        var metadata = typeof(PackageFixture).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .ToDictionary(a => a.Key, a => a.Value ?? string.Empty, StringComparer.Ordinal);
        RepoRoot = Path.GetFullPath(metadata["RepoRoot"]);
        NuGetPackageRoot = metadata["NuGetPackageRoot"];

        // Unique per run, so neither the NuGet cache nor a feed can hand back a stale package.
        Version = $"0.1.0-pkgtest.{DateTime.UtcNow:yyyyMMddHHmmss}.g{Guid.NewGuid().ToString("N")[..8]}";
        Root = Path.Combine(Path.GetTempPath(), "lora-package-tests-" + Guid.NewGuid().ToString("N")[..12]);
        if (IsUnder(Root, RepoRoot))
            throw new InvalidOperationException($"The temporary directory {Root} lies inside the repository; set TMPDIR elsewhere.");
        Feed = Path.Combine(Root, "feed");
        Directory.CreateDirectory(Feed);

        var sources = Path.Combine(Root, "repo");
        CopySources(RepoRoot, sources);
        Pack = ProcessRunner.DotNet(sources,
        [
            "pack", "src/Lora.Runtime/Lora.Runtime.csproj", "-c", "Release", "-o", Feed, $"-p:Version={Version}",
            "--disable-build-servers", "-tl:off", "-nologo",
        ]);
        if (!Pack.Succeeded)
            throw new InvalidOperationException("dotnet pack failed: " + Pack);
        PackagePath = Path.Combine(Feed, $"{PackageId}.{Version}.nupkg");
        if (!File.Exists(PackagePath))
            throw new InvalidOperationException($"dotnet pack succeeded but {PackagePath} is missing. " + Pack);
    }

    /// <summary>The CLI packed as a .NET tool (<c>dotnet pack src/Lora.Cli</c>: PackAsTool, its publish output with
    /// libtorch and the patched libLibTorchSharp.so), into the same feed and version; packed on first use, after the
    /// library's Release build, which it reuses.</summary>
    public Lazy<ProcessResult> ToolPack => _toolPack ??= new Lazy<ProcessResult>(() => ProcessRunner.DotNet(Path.Combine(Root, "repo"),
    [
        "pack", "src/Lora.Cli/Lora.Cli.csproj", "-c", "Release", "-o", Feed, $"-p:Version={Version}",
        "--disable-build-servers", "-tl:off", "-nologo",
    ]));

    private Lazy<ProcessResult>? _toolPack;

    public const string ToolPackageId = "Lora.Cli";

    public string ToolPackagePath => Path.Combine(Feed, $"{ToolPackageId}.{Version}.nupkg");

    public string RepoRoot { get; }

    public string NuGetPackageRoot { get; }

    /// <summary>Temporary directory holding the source snapshot, the feed and the consumers.</summary>
    public string Root { get; }

    public string Feed { get; }

    public string Version { get; }

    public string PackagePath { get; }

    public ProcessResult Pack { get; }

    public void Dispose()
    {
        TryDelete(Root);
        // The extracted copy of this run's unique version is of no use to anyone after it.
        if (!string.IsNullOrEmpty(NuGetPackageRoot))
        {
            TryDelete(Path.Combine(NuGetPackageRoot, PackageId.ToLowerInvariant(), Version));
            TryDelete(Path.Combine(NuGetPackageRoot, ToolPackageId.ToLowerInvariant(), Version));
        }
    }

    /// <summary>The files a build of src/ needs: the repository's top-level files (props, targets, global.json,
    /// README.md...) and src/ without bin/ and obj/.</summary>
    private static void CopySources(string repoRoot, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(repoRoot))
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        CopyTree(Path.Combine(repoRoot, "src"), Path.Combine(destination, "src"));
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var dir in Directory.EnumerateDirectories(from))
        {
            var name = Path.GetFileName(dir);
            if (name is "bin" or "obj")
                continue;
            CopyTree(dir, Path.Combine(to, name));
        }
    }

    private static bool IsUnder(string path, string root) =>
        Path.GetFullPath(path).StartsWith(Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
                Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // Temporary files only; never fail a run over them.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
