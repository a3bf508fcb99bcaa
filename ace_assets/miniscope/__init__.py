"""miniscope"""
