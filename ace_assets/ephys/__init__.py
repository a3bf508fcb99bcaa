"""ephys"""
