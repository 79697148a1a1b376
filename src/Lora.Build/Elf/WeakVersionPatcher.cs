using System;
using System.IO;
using System.Linq;

namespace Lora.Build.Elf;

/// <summary>What <see cref="WeakVersionPatcher.Patch"/> did to a file.</summary>
public enum PatchOutcome
{
    /// <summary>The version requirement was strong and is now weak.</summary>
    Patched,

    /// <summary>The requirement was already weak (an earlier build patched it): nothing written.</summary>
    AlreadyWeak,

    /// <summary>The file does not require that version at all: nothing written.</summary>
    NotRequired,
}

/// <summary>
/// Marks one GNU version requirement (<c>Elf64_Vernaux</c> in <c>.gnu.version_r</c>) as weak by setting
/// VER_FLG_WEAK (0x2) in its <c>vna_flags</c>.
/// </summary>
/// <remarks>
/// Why: <c>libLibTorchSharp.so</c> 0.107.0 was linked by GCC 13 and requires <c>GLIBCXX_3.4.32</c> only for
/// <c>std::ios_base_library_init()</c>, a symbol its <c>&lt;iostream&gt;</c> references but never calls. Debian 12 and
/// Ubuntu 22.04 ship libstdc++ up to 3.4.30, so the dynamic loader refuses the library. A weak requirement is
/// checked with a warning only, and the unused symbol is never resolved. Only those two bytes change; the file is
/// rewritten through a temporary copy and a rename, so an interrupted build never leaves a torn library.
/// </remarks>
public static class WeakVersionPatcher
{
    public const ushort VerFlgWeak = 0x2;

    public static PatchOutcome Patch(string path, string library, string version)
    {
        var image = ElfImage.Load(path);
        var needs = image.VersionNeeds()
            .Where(n => n.File == library && n.Version == version)
            .ToList();
        if (needs.Count == 0)
            return PatchOutcome.NotRequired;
        if (needs.All(n => (n.Flags & VerFlgWeak) != 0))
            return PatchOutcome.AlreadyWeak;

        var bytes = (byte[])image.Bytes.Clone();
        foreach (var need in needs)
        {
            ushort flags = (ushort)(need.Flags | VerFlgWeak);
            bytes[need.FlagsOffset] = (byte)flags;
            bytes[need.FlagsOffset + 1] = (byte)(flags >> 8);
        }

        WriteAtomically(path, bytes);
        return PatchOutcome.Patched;
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        var temp = path + ".lora-tmp";
        // Keep the copy's timestamp: MSBuild's copy-if-changed then sees an up-to-date output and does not put the
        // unpatched library back on every incremental build.
        var lastWrite = File.GetLastWriteTimeUtc(path);
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.SetLastWriteTimeUtc(temp, lastWrite);
            // Replacing by rename also breaks a hard link into the NuGet cache, which must never be modified.
            if (File.Exists(path))
                File.Replace(temp, path, destinationBackupFileName: null);
            else
                File.Move(temp, path);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }
}
