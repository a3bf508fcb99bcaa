"""ace_assets"""
