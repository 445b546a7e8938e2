def remove_Occ(s, ch):
    return s.replace(ch, "", 1)
