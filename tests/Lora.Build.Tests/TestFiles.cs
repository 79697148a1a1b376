using System.Reflection;
using Lora.Build.Elf;

namespace Lora.Build.Tests;

/// <summary>The real inputs of the ELF tests, and a scratch directory per test for the copies they modify.</summary>
public sealed class TestFiles : IDisposable
{
    public const string Library = "libstdc++.so.6";
    public const string Version = "GLIBCXX_3.4.32";

    /// <summary>Debian 12's libstdc++, which stops at GLIBCXX_3.4.30.</summary>
    public const string SystemLibStdCxx = "/lib/x86_64-linux-gnu/libstdc++.so.6";

    public TestFiles()
    {
        Directory = Path.Combine(Path.GetTempPath(), "lora-build-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>
    /// The unpatched <c>libLibTorchSharp.so</c> in the NuGet cache: the path restore resolved for this test project
    /// (recorded at build time by the csproj), else derived from the recorded NuGet root. Read, never written.
    /// </summary>
    public static string CachedLibTorchSharp { get; } = FindCachedLibTorchSharp();

    /// <summary>A fresh, writable copy of the cached libLibTorchSharp.so.</summary>
    public string CopyOfLibTorchSharp(string name = "libLibTorchSharp.so") => CopyIn(CachedLibTorchSharp, name);

    public string CopyIn(string source, string name)
    {
        var path = Path.Combine(Directory, name);
        File.Copy(source, path, overwrite: false);
        return path;
    }

    public string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>
    /// A libstdc++ that defines <see cref="Version"/>: a copy of the system one whose dynamic string table has
    /// "GLIBCXX_3.4.30" rewritten to "GLIBCXX_3.4.32" (same length, so nothing else moves).
    /// </summary>
    public string LibStdCxxDefining332()
    {
        var path = CopyIn(SystemLibStdCxx, "libstdc++-with-3.4.32.so.6");
        var bytes = File.ReadAllBytes(path);
        var image = ElfImage.Load(path);
        var verdef = image.Sections.Single(s => s.Type == ElfImage.ShtGnuVerdef);
        var dynstr = image.Sections[(int)verdef.Link];
        var from = "GLIBCXX_3.4.30\0"u8;
        var to = "GLIBCXX_3.4.32\0"u8;
        var table = bytes.AsSpan((int)dynstr.Offset, (int)dynstr.Size);
        var at = table.IndexOf(from);
        Assert.True(at >= 0, $"{SystemLibStdCxx} has no GLIBCXX_3.4.30 in its dynamic string table");
        to.CopyTo(table[at..]);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is not worth failing a test.
        }
    }

    private static string FindCachedLibTorchSharp()
    {
        var metadata = typeof(TestFiles).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .ToDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal);
        if (metadata.TryGetValue("LibTorchSharpInPackageCache", out var resolved) && File.Exists(resolved))
            return resolved!;

        // Fallback: the newest TorchSharp version under the NuGet root restore used.
        metadata.TryGetValue("NuGetPackageRoot", out var root);
        var packageDir = Path.Combine(root ?? string.Empty, "torchsharp");
        var found = System.IO.Directory.Exists(packageDir)
            ? System.IO.Directory.EnumerateDirectories(packageDir)
                .Select(d => Path.Combine(d, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"))
                .Where(File.Exists)
                .OrderByDescending(p => p, StringComparer.Ordinal)
                .FirstOrDefault()
            : null;
        return found ?? throw new InvalidOperationException(
            $"libLibTorchSharp.so not found in the NuGet cache (NuGetPackageRoot='{root}', recorded path='{resolved}'). Restore the test project first.");
    }
}
