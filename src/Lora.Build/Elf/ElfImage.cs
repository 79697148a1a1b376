using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Lora.Build.Elf;

/// <summary>
/// Read-only view of a 64-bit little-endian ELF file: just enough to walk the GNU symbol-versioning sections
/// (<c>.gnu.version_r</c> = SHT_GNU_verneed, <c>.gnu.version_d</c> = SHT_GNU_verdef).
/// Every offset is bounds-checked, so a truncated or hostile file raises <see cref="ElfFormatException"/>.
/// </summary>
public sealed class ElfImage
{
    internal const uint ShtStrtab = 3;
    internal const uint ShtGnuVerdef = 0x6ffffffd;
    internal const uint ShtGnuVerneed = 0x6ffffffe;

    private readonly byte[] _bytes;

    private ElfImage(string path, byte[] bytes, IReadOnlyList<Section> sections)
    {
        Path = path;
        _bytes = bytes;
        Sections = sections;
    }

    public string Path { get; }

    internal byte[] Bytes => _bytes;

    internal IReadOnlyList<Section> Sections { get; }

    /// <summary>A section header, reduced to the fields the versioning walk needs.</summary>
    internal readonly struct Section
    {
        public Section(uint type, long offset, long size, uint link, uint info)
        {
            Type = type;
            Offset = offset;
            Size = size;
            Link = link;
            Info = info;
        }

        public uint Type { get; }
        public long Offset { get; }
        public long Size { get; }
        public uint Link { get; }
        public uint Info { get; }
    }

    /// <summary>One <c>Elf64_Vernaux</c>: a version a needed library must provide.</summary>
    public readonly struct VersionNeed
    {
        public VersionNeed(string file, string version, ushort flags, long flagsOffset)
        {
            File = file;
            Version = version;
            Flags = flags;
            FlagsOffset = flagsOffset;
        }

        /// <summary>The library (DT_NEEDED soname), e.g. <c>libstdc++.so.6</c>.</summary>
        public string File { get; }

        /// <summary>The version name, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
        public string Version { get; }

        /// <summary><c>vna_flags</c>; bit 0x2 is VER_FLG_WEAK.</summary>
        public ushort Flags { get; }

        /// <summary>File offset of <c>vna_flags</c>.</summary>
        public long FlagsOffset { get; }
    }

    public static ElfImage Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException e)
        {
            throw new ElfFormatException(path, "cannot be read: " + e.Message);
        }

        return Parse(path, bytes);
    }

    internal static ElfImage Parse(string path, byte[] bytes)
    {
        if (bytes.Length == 0)
            throw new ElfFormatException(path, "the file is empty, shorter than an ELF header");
        if (bytes.Length < 4 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
            throw new ElfFormatException(path, "missing the \\x7fELF magic");
        if (bytes.Length < 64)
            throw new ElfFormatException(path, $"file is {bytes.Length} bytes, shorter than an ELF header");
        if (bytes[4] != 2)
            throw new ElfFormatException(path, "not a 64-bit ELF (EI_CLASS != ELFCLASS64)");
        if (bytes[5] != 1)
            throw new ElfFormatException(path, "not little-endian (EI_DATA != ELFDATA2LSB)");

        var reader = new Reader(path, bytes);
        long shoff = (long)reader.U64(0x28, "e_shoff");
        int shentsize = reader.U16(0x3A, "e_shentsize");
        long shnum = reader.U16(0x3C, "e_shnum");
        if (shoff == 0)
            throw new ElfFormatException(path, "no section header table");
        if (shentsize < 64)
            throw new ElfFormatException(path, $"section header entry size {shentsize} < 64");
        if (shnum == 0)
        {
            // Extended numbering (>= 0xff00 sections): the real count is sh_size of section header 0.
            reader.Require(shoff, 64, "section header 0");
            shnum = (long)reader.U64(shoff + 0x20, "section header 0 sh_size");
        }

        // Bound the count by the file before allocating for it (and before multiplying).
        if (shnum < 0 || shnum > bytes.Length / shentsize)
            throw new ElfFormatException(path, $"{shnum} section headers cannot fit in the {bytes.Length}-byte file; truncated?");
        reader.Require(shoff, shnum * shentsize, "section header table");

        var sections = new List<Section>((int)shnum);
        for (long i = 0; i < shnum; i++)
        {
            long at = shoff + i * shentsize;
            reader.Require(at, 64, $"section header {i}");
            var type = reader.U32(at + 0x04, "sh_type");
            var offset = (long)reader.U64(at + 0x18, "sh_offset");
            var size = (long)reader.U64(at + 0x20, "sh_size");
            var link = reader.U32(at + 0x28, "sh_link");
            var info = reader.U32(at + 0x2C, "sh_info");
            // SHT_NOBITS (8) occupies no file space; everything else must lie inside the file.
            if (type != 8 && type != 0)
                reader.Require(offset, size, $"section {i} contents");
            sections.Add(new Section(type, offset, size, link, info));
        }

        return new ElfImage(path, bytes, sections);
    }

    /// <summary>All <c>Elf64_Vernaux</c> entries of the <c>.gnu.version_r</c> section (empty when there is none).</summary>
    public IReadOnlyList<VersionNeed> VersionNeeds()
    {
        var result = new List<VersionNeed>();
        var reader = new Reader(Path, _bytes);
        foreach (var section in Sections)
        {
            if (section.Type != ShtGnuVerneed)
                continue;
            var strtab = StringTable(section.Link);
            var entries = reader.Within(section, ".gnu.version_r");
            long at = section.Offset;
            for (uint n = 0; n < section.Info; n++)
            {
                entries.Require(at, 16, "Elf64_Verneed");
                int count = reader.U16(at + 2, "vn_cnt");
                string file = ReadString(strtab, reader.U32(at + 4, "vn_file"));
                long aux = at + reader.U32(at + 8, "vn_aux");
                for (int k = 0; k < count; k++)
                {
                    entries.Require(aux, 16, "Elf64_Vernaux");
                    ushort flags = reader.U16(aux + 4, "vna_flags");
                    string version = ReadString(strtab, reader.U32(aux + 8, "vna_name"));
                    result.Add(new VersionNeed(file, version, flags, aux + 4));
                    uint nextAux = reader.U32(aux + 12, "vna_next");
                    if (nextAux == 0)
                        break;
                    aux += nextAux;
                }

                uint next = reader.U32(at + 12, "vn_next");
                if (next == 0)
                    break;
                at += next;
            }
        }

        return result;
    }

    /// <summary>The version names this library defines in <c>.gnu.version_d</c> (e.g. every <c>GLIBCXX_*</c>).</summary>
    public IReadOnlyList<string> VersionDefinitions()
    {
        var result = new List<string>();
        var reader = new Reader(Path, _bytes);
        foreach (var section in Sections)
        {
            if (section.Type != ShtGnuVerdef)
                continue;
            var strtab = StringTable(section.Link);
            var entries = reader.Within(section, ".gnu.version_d");
            long at = section.Offset;
            for (uint n = 0; n < section.Info; n++)
            {
                entries.Require(at, 20, "Elf64_Verdef");
                long aux = at + reader.U32(at + 12, "vd_aux");
                entries.Require(aux, 8, "Elf64_Verdaux");
                result.Add(ReadString(strtab, reader.U32(aux, "vda_name")));
                uint next = reader.U32(at + 16, "vd_next");
                if (next == 0)
                    break;
                at += next;
            }
        }

        return result;
    }

    private Section StringTable(uint index)
    {
        if (index >= Sections.Count)
            throw new ElfFormatException(Path, $"sh_link {index} points past the section table");
        // Only SHT_STRTAB sections were bounds-checked against the file with their contents.
        var section = Sections[(int)index];
        if (section.Type != ShtStrtab)
            throw new ElfFormatException(Path, $"sh_link {index} names a section of type 0x{section.Type:x}, not a string table");
        return section;
    }

    private string ReadString(Section strtab, uint offset)
    {
        long start = strtab.Offset + offset;
        if (offset >= strtab.Size)
            throw new ElfFormatException(Path, $"string offset {offset} outside its string table");
        long end = start;
        long limit = strtab.Offset + strtab.Size;
        while (end < limit && _bytes[end] != 0)
            end++;
        if (end == limit)
            throw new ElfFormatException(Path, "unterminated string in a string table");
        return Encoding.ASCII.GetString(_bytes, (int)start, (int)(end - start));
    }

    /// <summary>Little-endian reads that fail with the file name instead of an IndexOutOfRangeException.</summary>
    private readonly struct Reader
    {
        private readonly string _path;
        private readonly byte[] _bytes;

        public Reader(string path, byte[] bytes)
        {
            _path = path;
            _bytes = bytes;
        }

        public void Require(long offset, long length, string what)
        {
            if (offset < 0 || length < 0 || offset > _bytes.Length || length > _bytes.Length - offset)
                throw new ElfFormatException(_path, $"{what} at offset {offset} (+{length}) lies outside the {_bytes.Length}-byte file; truncated?");
        }

        /// <summary>Checks that entries stay inside <paramref name="section"/> (itself already inside the file).</summary>
        public SectionBounds Within(Section section, string name) => new(_path, section, name);

        public ushort U16(long at, string what)
        {
            Require(at, 2, what);
            return (ushort)(_bytes[at] | _bytes[at + 1] << 8);
        }

        public uint U32(long at, string what)
        {
            Require(at, 4, what);
            return (uint)(_bytes[at] | _bytes[at + 1] << 8 | _bytes[at + 2] << 16 | _bytes[at + 3] << 24);
        }

        public ulong U64(long at, string what)
        {
            Require(at, 8, what);
            return U32(at, what) | (ulong)U32(at + 4, what) << 32;
        }
    }

    /// <summary>Bounds of one section, for entries that must not wander out of it.</summary>
    private readonly struct SectionBounds
    {
        private readonly string _path;
        private readonly Section _section;
        private readonly string _name;

        public SectionBounds(string path, Section section, string name)
        {
            _path = path;
            _section = section;
            _name = name;
        }

        public void Require(long offset, long length, string what)
        {
            long end = _section.Offset + _section.Size;
            if (offset < _section.Offset || length < 0 || offset > end || length > end - offset)
                throw new ElfFormatException(_path, $"{what} at offset {offset} (+{length}) lies outside its section {_name} [{_section.Offset}, {end})");
        }
    }
}
