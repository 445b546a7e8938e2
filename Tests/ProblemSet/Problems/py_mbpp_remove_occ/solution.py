def remove_Occ(s, ch):
    s = s.replace(ch, "", 1)
    i = s.rfind(ch)
    return s if i < 0 else s[:i] + s[i + 1:]
