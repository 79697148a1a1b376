using System;
using System.Collections.Generic;
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
/// rewritten through a temporary copy (same mode, same timestamp) and a rename, so an interrupted build never leaves
/// a torn library and a hard link into the NuGet cache is broken rather than written through.
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

        WriteAtomically(path, needs.Select(n => (n.FlagsOffset, (ushort)(n.Flags | VerFlgWeak))).ToList());
        return PatchOutcome.Patched;
    }

    /// <summary>Copies <paramref name="path"/> (File.Copy keeps the file mode), writes the new flags into the copy,
    /// gives it the original's timestamp and renames it over the original.</summary>
    private static void WriteAtomically(string path, IReadOnlyList<(long Offset, ushort Flags)> writes)
    {
        var temp = path + ".lora-tmp";
        // Keep the copy's timestamp: MSBuild's copy-if-changed then sees an up-to-date output and does not put the
        // unpatched library back on every incremental build.
        var lastWrite = File.GetLastWriteTimeUtc(path);
        try
        {
            File.Copy(path, temp, overwrite: true);
            // A read-only library (copied from a read-only cache) stays read-only, but its copy must take the write.
            var attributes = File.GetAttributes(temp);
            File.SetAttributes(temp, attributes & ~FileAttributes.ReadOnly);
            using (var stream = new FileStream(temp, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                foreach (var (offset, flags) in writes)
                {
                    stream.Position = offset;
                    stream.WriteByte((byte)flags);
                    stream.WriteByte((byte)(flags >> 8));
                }
            }

            File.SetAttributes(temp, attributes);
            File.SetLastWriteTimeUtc(temp, lastWrite);
            // Replacing by rename also breaks a hard link into the NuGet cache, which must never be modified.
            File.Replace(temp, path, destinationBackupFileName: null);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }
}
