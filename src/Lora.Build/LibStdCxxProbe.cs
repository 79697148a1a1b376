using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Lora.Build.Elf;

namespace Lora.Build;

/// <summary>Finds the libstdc++ the dynamic loader will use and asks which GLIBCXX versions it defines.</summary>
public static class LibStdCxxProbe
{
    public const string SoName = "libstdc++.so.6";

    /// <summary>Directories searched after LD_LIBRARY_PATH, in the order the common distributions' ld.so.cache uses.</summary>
    private static readonly string[] SystemDirectories =
    {
        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
        "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib",
    };

    /// <summary>The first <c>libstdc++.so.6</c> on LD_LIBRARY_PATH or in the system directories; null if none.</summary>
    public static string? Locate(string? ldLibraryPath)
    {
        var directories = (ldLibraryPath ?? string.Empty)
            .Split(new[] { ':' }, StringSplitOptions.RemoveEmptyEntries)
            .Concat(SystemDirectories);
        return directories.Select(d => Path.Combine(d, SoName)).FirstOrDefault(File.Exists);
    }

    /// <summary>True when the library at <paramref name="libStdCxxPath"/> defines <paramref name="version"/>.</summary>
    public static bool Defines(string libStdCxxPath, string version)
    {
        IReadOnlyList<string> definitions = ElfImage.Load(libStdCxxPath).VersionDefinitions();
        return definitions.Contains(version);
    }
}
