using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Sets VER_FLG_WEAK on one version-need entry (ELF section .gnu.version_r) of a 64-bit
/// little-endian shared library, so that the loader accepts a system library without that version.
/// </summary>
public sealed class MarkElfVersionNeedWeak : Task
{
    private const uint SectionTypeVersionNeed = 0x6ffffffe;
    private const ushort VersionFlagWeak = 0x2;

    [Required]
    public string LibraryPath { get; set; } = "";

    [Required]
    public string SystemLibraryPath { get; set; } = "";

    [Required]
    public string VersionName { get; set; } = "";

    public override bool Execute()
    {
        if (File.Exists(SystemLibraryPath) && ContainsAscii(File.ReadAllBytes(SystemLibraryPath), VersionName))
        {
            Log.LogMessage(MessageImportance.Low, "{0} provides {1}; {2} needs no patch.", SystemLibraryPath, VersionName, LibraryPath);
            return true;
        }

        byte[] image = File.ReadAllBytes(LibraryPath);
        if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[4] != 2 || image[5] != 1)
        {
            Log.LogError("{0} is not a 64-bit little-endian ELF file.", LibraryPath);
            return false;
        }

        int entryOffset = FindVersionNeedFlags(image);
        if (entryOffset < 0)
        {
            Log.LogMessage(MessageImportance.Normal, "{0} has no version need on {1}; nothing to patch.", LibraryPath, VersionName);
            return true;
        }

        ushort flags = BitConverter.ToUInt16(image, entryOffset);
        if ((flags & VersionFlagWeak) != 0)
        {
            Log.LogMessage(MessageImportance.Low, "{0}: version need {1} is already weak.", LibraryPath, VersionName);
            return true;
        }

        using (var stream = new FileStream(LibraryPath, FileMode.Open, FileAccess.Write))
        {
            stream.Position = entryOffset;
            byte[] patched = BitConverter.GetBytes((ushort)(flags | VersionFlagWeak));
            stream.Write(patched, 0, patched.Length);
        }

        Log.LogMessage(MessageImportance.High, "Marked version need {0} weak in {1} (system libstdc++ lacks it).", VersionName, LibraryPath);
        return true;
    }

    // Returns the file offset of vna_flags of the matching Vernaux entry, or -1.
    private int FindVersionNeedFlags(byte[] image)
    {
        long sectionTableOffset = BitConverter.ToInt64(image, 0x28);
        int sectionHeaderSize = BitConverter.ToUInt16(image, 0x3A);
        int sectionCount = BitConverter.ToUInt16(image, 0x3C);

        for (int index = 0; index < sectionCount; index++)
        {
            long header = sectionTableOffset + ((long)index * sectionHeaderSize);
            uint type = BitConverter.ToUInt32(image, (int)header + 0x04);
            if (type != SectionTypeVersionNeed)
            {
                continue;
            }

            long needOffset = BitConverter.ToInt64(image, (int)header + 0x18);
            int stringTableIndex = (int)BitConverter.ToUInt32(image, (int)header + 0x28);
            int needCount = (int)BitConverter.ToUInt32(image, (int)header + 0x2C);
            long stringHeader = sectionTableOffset + ((long)stringTableIndex * sectionHeaderSize);
            long stringsOffset = BitConverter.ToInt64(image, (int)stringHeader + 0x18);

            long need = needOffset;
            for (int n = 0; n < needCount; n++)
            {
                int auxCount = BitConverter.ToUInt16(image, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(image, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    uint nameOffset = BitConverter.ToUInt32(image, (int)aux + 8);
                    if (ReadString(image, stringsOffset + nameOffset) == VersionName)
                    {
                        return (int)aux + 4;
                    }

                    aux += BitConverter.ToUInt32(image, (int)aux + 12);
                }

                need += BitConverter.ToUInt32(image, (int)need + 12);
            }
        }

        return -1;
    }

    private static string ReadString(byte[] image, long offset)
    {
        int end = (int)offset;
        while (end < image.Length && image[end] != 0)
        {
            end++;
        }

        return Encoding.ASCII.GetString(image, (int)offset, end - (int)offset);
    }

    private static bool ContainsAscii(byte[] haystack, string text)
    {
        byte[] needle = Encoding.ASCII.GetBytes(text + "\0");
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j])
            {
                j++;
            }

            if (j == needle.Length)
            {
                return true;
            }
        }

        return false;
    }
}
